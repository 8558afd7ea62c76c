"""What the trainer's parts and the other packages share: errors, console, paths, output
claims, devices (distribution) and metrics."""
