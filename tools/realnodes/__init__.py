"""Real local nodes: a kubelet and its own containerd per node, CNI bridges, a cluster DNS."""
