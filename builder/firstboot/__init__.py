"""First boot: each node's cloud-init seed (user-data, meta-data,
network-config) and the ISO that carries it."""
