"""The CentOS installer media: the source ISO (downloaded, verified), and its
remaster into an unattended installer ISO with an offline repository."""
