"""ResNet18 / CIFAR-10 learning-rate schedule study: the training engine and the analysis behind the workflow."""
