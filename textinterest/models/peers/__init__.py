"""Peers of the field behind the house recommender interface.

- :mod:`textinterest.models.peers.sequential`: SASRec and GRU4Rec (torch, always available).
- :mod:`textinterest.models.peers.cornac`: Cornac's BPR, MF, HFT and CTR (optional extra ``peers``).

Nothing heavy is imported here; import the submodule you need.
"""
