"""The trainer the Ringleader operator launches in every worker pod."""
