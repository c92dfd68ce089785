# Packer template for one role's image, rendered by builder.
# Every value comes from build.pkrvars.json (written from roles-config/) or
# from `-var` at build time: override any of them the same way.

packer {
  required_version = ">= 1.7.0"
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}

variable "role" {
  type        = string
  description = "The role set, as directory names write it: master, slave, master-slave."
}

variable "iso_url" {
  type = string
}

variable "iso_checksum" {
  type        = string
  description = "sha256:HEX of the installer ISO."
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "kvm, or tcg where KVM does not work (much slower)."
}

variable "cpus" {
  type = number
}

variable "memory_mb" {
  type = number
}

variable "disk_size" {
  type = string
}

variable "boot_wait" {
  type = string
}

variable "ssh_timeout" {
  type = string
}

variable "headless" {
  type    = bool
  default = true
}

variable "http_directory" {
  type        = string
  description = "Served by Packer's HTTP server: holds ks.cfg."
}

variable "http_port_min" {
  type        = number
  default     = 8000
  description = "Packer's HTTP server port range (one port when a mirror is served)."
}

variable "http_port_max" {
  type    = number
  default = 9000
}

variable "provision_script" {
  type = string
}

variable "ssh_private_key_file" {
  type        = string
  description = "This build's own key; the kickstart carries only its public half."
}

variable "output_directory" {
  type    = string
  default = "output"
}

variable "vm_name" {
  type = string
}

variable "serial_log" {
  type    = string
  default = "serial.log"
}

variable "manifest" {
  type    = string
  default = "packer-manifest.json"
}

variable "aws_region" {
  type = string
}

variable "aws_instance_type" {
  type = string
}

variable "aws_source_ami_owners" {
  type = list(string)
}

variable "aws_source_ami_name" {
  type = string
}

variable "aws_ssh_username" {
  type = string
}

variable "aws_volume_size_gb" {
  type = number
}

variable "ami_name" {
  type = string
}

source "qemu" "centos7" {
  iso_url              = var.iso_url
  iso_checksum         = var.iso_checksum
  accelerator          = var.accelerator
  cpus                 = var.cpus
  memory               = var.memory_mb
  disk_size            = var.disk_size
  disk_interface       = "virtio"
  net_device           = "virtio-net"
  format               = "qcow2"
  headless             = var.headless
  http_directory       = var.http_directory
  http_port_min        = var.http_port_min
  http_port_max        = var.http_port_max
  boot_wait            = var.boot_wait

  boot_command         = ["<up><wait><tab><wait> inst.cmdline console=tty0 console=ttyS0,115200n8 inst.ks=http://{{ .HTTPIP }}:{{ .HTTPPort }}/ks.cfg<enter><wait>"]
  communicator         = "ssh"
  ssh_username         = "root"
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = var.ssh_timeout
  shutdown_command     = "systemctl poweroff"
  output_directory     = var.output_directory
  vm_name              = var.vm_name
  qemuargs             = [["-serial", "file:${var.serial_log}"]]
}

source "amazon-ebs" "centos7" {
  region        = var.aws_region
  instance_type = var.aws_instance_type
  ssh_username  = var.aws_ssh_username
  ami_name      = var.ami_name
  ena_support   = true
  sriov_support = true
  imds_support  = "v2.0"

  source_ami_filter {
    filters = {
      name                = var.aws_source_ami_name
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = var.aws_source_ami_owners
    most_recent = true
  }

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = var.aws_volume_size_gb
    volume_type           = "gp3"
    iops                  = 3000
    throughput            = 125
    delete_on_termination = true
  }

  tags = {
    Role    = var.role
    Builder = "builder"
  }
}

build {
  sources = ["source.qemu.centos7", "source.amazon-ebs.centos7"]

  # The kickstart's %post already configured the ISO install: seal it.
  provisioner "shell" {
    only            = ["qemu.centos7"]
    script          = var.provision_script

    execute_command = "chmod +x {{ .Path }}; {{ .Vars }} {{ .Path }} seal"
  }

  # The CentOS AMI has none of the role yet: the same script does it all.
  provisioner "shell" {
    only            = ["amazon-ebs.centos7"]
    script          = var.provision_script

    execute_command = "chmod +x {{ .Path }}; {{ .Vars }} sudo -E {{ .Path }} install configure seal"
  }

  post-processor "manifest" {
    output     = var.manifest
    strip_path = true
  }
}
