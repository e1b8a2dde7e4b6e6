"""Paid features of the node beyond donations: subscriptions, virtual gifts, and the overlay alert feed."""
