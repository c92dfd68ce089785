"""Stage 3, build: Packer (qemu, amazon-ebs) and the installer ISO as build
targets, the accelerator probe, the per-build key, the build manifest."""
