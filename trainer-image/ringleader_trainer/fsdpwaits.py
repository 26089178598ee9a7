"""Where an FSDP rank waits on its group: inside FSDP's own hooks on its units.

FSDP2 all-gathers a unit's parameters in the unit's forward pre-hook and again, for backward,
in a hook on the unit's outputs; it reduce-scatters the unit's gradients right after the unit's
backward (an autograd function on its inputs). A rank that waits there waits for its peers. The
hooks here bracket FSDP's (a forward pre-hook before and one after its own; hooks on the
outputs registered before and after its own; a hook on the inputs' gradients when the unit's
backward is done), and tell the step timer each stretch in between as waiting. Observation
only: nothing here changes what FSDP does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ringleader_trainer.steptimes import StepTimer


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors that need a gradient in a module's inputs or outputs (nested one level)."""
    if isinstance(value, torch.Tensor):
        return [value] if value.requires_grad else []
    if isinstance(value, list | tuple):
        return [t for item in value for t in tensors_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors_in(item)]
    return []


class UnitWaits:
    """The waits of one rank inside FSDP's hooks, told to its step timer."""

    def __init__(self, timer: StepTimer, units: Iterable[nn.Module]) -> None:
        self.timer = timer
        self._open: Any = None  # the mark a wait began at, while one lasts
        for unit in units:
            unit.register_forward_pre_hook(self._before_fsdp_forward, prepend=True)
            unit.register_forward_pre_hook(self._after_fsdp_forward)
            unit.register_forward_hook(self._hook_outputs_before_fsdp, prepend=True)
            unit.register_forward_hook(self._hook_outputs_after_fsdp)

    def _recording(self) -> bool:
        """Whether a forward is part of a step (not an evaluation): only then are its tensors
        hooked for the backward that follows."""
        return self.timer.running and torch.is_grad_enabled()

    def begin(self, _grad: Any = None) -> None:
        """A wait begins (ending one that lasted until now). Called in backward too, where
        autograd has turned grad mode off."""
        if self.timer.running:
            self.close()
            self._open = self.timer.mark()

    def close(self, now: Any = None) -> None:
        """The wait that lasted, if any, ends now (or at the given mark)."""
        if self._open is not None:
            self.timer.waited(self._open, self.timer.mark() if now is None else now)
            self._open = None

    def _before_fsdp_forward(self, _unit: nn.Module, _args: Any) -> None:
        self.begin()

    def _after_fsdp_forward(self, _unit: nn.Module, args: Any) -> None:
        self.close()
        if self._recording():
            for tensor in tensors_in(args):  # what FSDP passed on: its gradient comes last
                tensor.register_hook(self.begin)  # type: ignore[no-untyped-call]  # then reduce-scatter

    def _hook_outputs_before_fsdp(self, _unit: nn.Module, _args: Any, output: Any) -> None:
        if self._recording():
            for tensor in tensors_in(output):
                tensor.register_hook(self.begin)  # type: ignore[no-untyped-call]  # then all-gather

    def _hook_outputs_after_fsdp(self, _unit: nn.Module, _args: Any, output: Any) -> None:
        if self._recording():
            for tensor in tensors_in(output):
                tensor.register_hook(self._end_of_wait)  # type: ignore[no-untyped-call]

    def _end_of_wait(self, _grad: Any) -> None:
        self.close()
