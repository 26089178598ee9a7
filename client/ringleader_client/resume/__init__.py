"""Exact resume for a loop of your own (these need torch): the deterministic data order with
its cursor (data.DataOrder), the checkpointer that commits by rename and keeps the newest K
(checkpoint.Checkpointer), and agreeing across the group to stop at one step (agree_to_stop).
The built-in trainer uses the same ones.
"""

from __future__ import annotations

from ringleader_client.resume.agreement import agree_to_stop

__all__ = ["agree_to_stop"]
