"""The local node agent: runs pods bound to local nodes as real processes, like a kubelet."""
