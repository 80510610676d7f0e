"""The team: invitations, roles, deactivation and handing a campaign to someone else."""
