"""Vigil's API: the kinds users apply, as strict pydantic models, and their vocabulary.

The bottom layer: it imports nothing else of Vigil. This file imports nothing either, so
that the light vocabulary modules (``liveness``, ``splitbrain``) cost the heartbeat fast
path and blockrepl nothing; import the models from their modules (``api.group``, ...).
"""
