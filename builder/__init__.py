"""builder: bakes bootable Apache Mesos node appliances for CentOS 7."""

__version__ = "0.1.0"
