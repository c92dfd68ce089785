"""`builder up`: the inventory's cluster as QEMU VMs on one machine (after verify, before cli)."""
