"""The VM run state (QEMU's ``RunState``) as a transition table, and what stop/cont/reset do.

Sans-IO: :class:`RunStateMachine` methods change the state and return the QMP
events the change produces (``STOP``, ``RESUME``) for the caller to emit. The rules
are softmmu/runstate.c's and monitor/qmp-cmds.c's: ``stop`` pauses only a running
VM (in ``inmigrate`` it just clears autostart), ``cont`` starts a stopped one
(``RESUME`` first) and refuses after a shutdown, a reset leaves a stopped VM in
``prelaunch``.
"""

from __future__ import annotations

import enum

import attrs

from spapr.errors import QemuError


class RunState(enum.Enum):
    """QEMU's run states (query-status ``status``)."""

    DEBUG = "debug"
    INMIGRATE = "inmigrate"
    INTERNAL_ERROR = "internal-error"
    IO_ERROR = "io-error"
    PAUSED = "paused"
    POSTMIGRATE = "postmigrate"
    PRELAUNCH = "prelaunch"
    FINISH_MIGRATE = "finish-migrate"
    RESTORE_VM = "restore-vm"
    RUNNING = "running"
    SAVE_VM = "save-vm"
    SHUTDOWN = "shutdown"
    SUSPENDED = "suspended"
    WATCHDOG = "watchdog"
    GUEST_PANICKED = "guest-panicked"
    COLO = "colo"


_S = RunState
#: runstate_transitions_def: every allowed (from, to) pair.
TRANSITIONS: frozenset[tuple[RunState, RunState]] = frozenset(
    [
        (_S.PRELAUNCH, _S.INMIGRATE),
        (_S.DEBUG, _S.RUNNING),
        (_S.DEBUG, _S.FINISH_MIGRATE),
        (_S.DEBUG, _S.PRELAUNCH),
        (_S.DEBUG, _S.SUSPENDED),
        *[
            (_S.INMIGRATE, to)
            for to in (
                _S.INTERNAL_ERROR,
                _S.IO_ERROR,
                _S.PAUSED,
                _S.RUNNING,
                _S.SHUTDOWN,
                _S.SUSPENDED,
                _S.WATCHDOG,
                _S.GUEST_PANICKED,
                _S.FINISH_MIGRATE,
                _S.PRELAUNCH,
                _S.POSTMIGRATE,
                _S.COLO,
            )
        ],
        (_S.INTERNAL_ERROR, _S.PAUSED),
        (_S.INTERNAL_ERROR, _S.FINISH_MIGRATE),
        (_S.INTERNAL_ERROR, _S.PRELAUNCH),
        (_S.IO_ERROR, _S.RUNNING),
        (_S.IO_ERROR, _S.FINISH_MIGRATE),
        (_S.IO_ERROR, _S.PRELAUNCH),
        (_S.PAUSED, _S.RUNNING),
        (_S.PAUSED, _S.FINISH_MIGRATE),
        (_S.PAUSED, _S.POSTMIGRATE),
        (_S.PAUSED, _S.PRELAUNCH),
        (_S.PAUSED, _S.COLO),
        (_S.POSTMIGRATE, _S.RUNNING),
        (_S.POSTMIGRATE, _S.FINISH_MIGRATE),
        (_S.POSTMIGRATE, _S.PRELAUNCH),
        (_S.PRELAUNCH, _S.RUNNING),
        (_S.PRELAUNCH, _S.FINISH_MIGRATE),
        (_S.FINISH_MIGRATE, _S.RUNNING),
        (_S.FINISH_MIGRATE, _S.PAUSED),
        (_S.FINISH_MIGRATE, _S.POSTMIGRATE),
        (_S.FINISH_MIGRATE, _S.PRELAUNCH),
        (_S.FINISH_MIGRATE, _S.COLO),
        (_S.RESTORE_VM, _S.RUNNING),
        (_S.RESTORE_VM, _S.PRELAUNCH),
        (_S.COLO, _S.RUNNING),
        (_S.COLO, _S.PRELAUNCH),
        (_S.COLO, _S.SHUTDOWN),
        *[
            (_S.RUNNING, to)
            for to in (
                _S.DEBUG,
                _S.INTERNAL_ERROR,
                _S.IO_ERROR,
                _S.PAUSED,
                _S.FINISH_MIGRATE,
                _S.RESTORE_VM,
                _S.SAVE_VM,
                _S.SHUTDOWN,
                _S.WATCHDOG,
                _S.GUEST_PANICKED,
                _S.COLO,
                _S.SUSPENDED,
            )
        ],
        (_S.SAVE_VM, _S.RUNNING),
        (_S.SHUTDOWN, _S.PAUSED),
        (_S.SHUTDOWN, _S.FINISH_MIGRATE),
        (_S.SHUTDOWN, _S.PRELAUNCH),
        (_S.SHUTDOWN, _S.COLO),
        (_S.SUSPENDED, _S.RUNNING),
        (_S.SUSPENDED, _S.FINISH_MIGRATE),
        (_S.SUSPENDED, _S.PRELAUNCH),
        (_S.SUSPENDED, _S.COLO),
        (_S.WATCHDOG, _S.RUNNING),
        (_S.WATCHDOG, _S.FINISH_MIGRATE),
        (_S.WATCHDOG, _S.PRELAUNCH),
        (_S.WATCHDOG, _S.COLO),
        (_S.GUEST_PANICKED, _S.RUNNING),
        (_S.GUEST_PANICKED, _S.FINISH_MIGRATE),
        (_S.GUEST_PANICKED, _S.PRELAUNCH),
    ]
)


class InvalidTransition(RuntimeError):
    """A transition QEMU would abort on ("invalid runstate transition")."""


@attrs.define
class RunStateMachine:
    """The current run state and ``autostart`` (cleared by -S or stop in inmigrate)."""

    state: RunState = RunState.PRELAUNCH
    autostart: bool = True

    @property
    def running(self) -> bool:
        """runstate_is_running."""
        return self.state is RunState.RUNNING

    @property
    def needs_reset(self) -> bool:
        """runstate_needs_reset: cont is refused until a system_reset."""
        return self.state in (RunState.INTERNAL_ERROR, RunState.SHUTDOWN)

    def set(self, new: RunState) -> None:
        """runstate_set: the one funnel; same state is a no-op, illegal pairs raise."""
        if new is self.state:
            return
        if (self.state, new) not in TRANSITIONS:
            raise InvalidTransition(
                f"invalid runstate transition: '{self.state.value}' -> '{new.value}'"
            )
        self.state = new

    def stop(self) -> list[str]:
        """qmp_stop: events to emit."""
        if self.state is RunState.INMIGRATE:
            self.autostart = False
            return []
        if not self.running:
            return []
        self.set(RunState.PAUSED)
        return ["STOP"]

    def cont(self) -> list[str]:
        """qmp_cont: events to emit; QemuError when the VM must be reset first."""
        if self.needs_reset:
            raise QemuError("Resetting the Virtual Machine is required")
        if self.state is RunState.SUSPENDED:
            return []
        if self.state is RunState.FINISH_MIGRATE:
            raise QemuError("Migration is not finalized yet")
        if self.state is RunState.INMIGRATE:
            self.autostart = True
            return []
        if self.running:
            return []
        self.set(RunState.RUNNING)
        return ["RESUME"]

    def after_reset(self) -> None:
        """main_loop_should_exit after a reset: a stopped VM goes back to prelaunch."""
        if self.state not in (RunState.RUNNING, RunState.INMIGRATE, RunState.FINISH_MIGRATE):
            self.set(RunState.PRELAUNCH)

    def shutdown(self) -> None:
        """A shutdown (guest power-off or quit) while running or incoming."""
        if self.state in (RunState.RUNNING, RunState.INMIGRATE, RunState.COLO):
            self.set(RunState.SHUTDOWN)
