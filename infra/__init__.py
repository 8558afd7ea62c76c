"""Launchers of pilotstate on Google Cloud: Dataflow, the trainer image, GPU VMs, Vertex AI.

Every launcher builds its commands (argv lists) from one configuration file and
either prints them (--dry-run) or runs them; see infra/README.md.
"""
