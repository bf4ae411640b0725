//! kube-sim: a loopback Kubernetes API simulator.
