"""Stage 2, render: a role set into its kickstart, provisioning script and
Packer template (templates are data; every value is computed here)."""
