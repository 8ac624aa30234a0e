"""stackfleet: a fleet-style cluster scheduler on etcd that runs OpenStack roles."""
