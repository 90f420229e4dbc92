"""Step 2 of LWay: self-supervised adaptation of an SR model on its own LR inputs."""
