"""Runs real Kubernetes control-plane components, kwok and Prometheus as local processes."""
