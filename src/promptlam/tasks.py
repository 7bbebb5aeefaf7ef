"""MetaWorld task names.

Kept as plain constants so that the config schema and the Snakefile need not import MetaWorld
(and with it MuJoCo); ``tests/test_tasks.py`` checks them against the installed MetaWorld.
"""

from promptlam.errors import UserError

MT10: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
"""The ten tasks of MetaWorld's MT10 benchmark, in MetaWorld's order: the paper's task set."""

ALL_V3: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3",
    "door-lock-v3", "door-open-v3", "door-unlock-v3", "hand-insert-v3", "drawer-close-v3",
    "drawer-open-v3", "faucet-open-v3", "faucet-close-v3", "hammer-v3", "handle-press-side-v3",
    "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "peg-insert-side-v3", "pick-place-wall-v3", "pick-out-of-hole-v3", "reach-v3", "push-back-v3",
    "push-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3",
    "plate-slide-back-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3",
    "stick-pull-v3", "push-wall-v3", "reach-wall-v3", "shelf-place-v3", "sweep-into-v3",
    "sweep-v3", "window-open-v3", "window-close-v3",
)
"""Every MetaWorld v3 task with a scripted expert; any of them may be listed under ``tasks``."""

STATE_DIM = 39
"""Size of MetaWorld's observation vector (hand, gripper, objects, previous frame, goal)."""

ACTION_DIM = 4
"""MetaWorld's action: hand displacement (x, y, z) and gripper command, each in [-1, 1]."""

MOVEMENT = slice(0, 3)
"""The movement part of an action (hand displacement x, y, z); index 3 is the gripper command."""

HAND_POSITION = slice(0, 3)
"""Where the hand's position (x, y, z) sits in MetaWorld's state vector."""

SPLITS: tuple[str, ...] = ("train", "eval")
"""Data splits. They draw distractor videos from disjoint sets and layouts from disjoint seeds."""


def check_task(task: str) -> str:
    """Return ``task`` if MetaWorld v3 has it, else raise a one-line ``UserError``."""
    if task not in ALL_V3:
        raise UserError(f"unknown task {task!r}: expected a MetaWorld v3 task name such as 'reach-v3'")
    return task


def check_split(split: str) -> str:
    """Return ``split`` if it is a known split, else raise a one-line ``UserError``."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    return split


TASK_TEXT: dict[str, tuple[str, str]] = {
    "reach-v3": ("reach the goal position", "goal"),
    "push-v3": ("push the puck to the goal", "puck"),
    "pick-place-v3": ("pick up the puck and place it at the goal", "puck"),
    "door-open-v3": ("open the door", "door"),
    "drawer-open-v3": ("open the drawer", "drawer"),
    "drawer-close-v3": ("close the drawer", "drawer"),
    "button-press-topdown-v3": ("press the button from the top", "button"),
    "peg-insert-side-v3": ("insert the peg into the hole from the side", "peg"),
    "window-open-v3": ("slide the window open", "window"),
    "window-close-v3": ("slide the window closed", "window"),
}
"""**[ours]** What fills a prompt's ``{task}`` and ``{object}`` placeholders for each MT10 task."""


def task_text(task: str) -> dict[str, str]:
    """The prompt placeholders of ``task``: ``{"task": ..., "object": ...}``.

    Tasks outside MT10 get their name as the task ("basketball") and its first word as object.
    """
    check_task(task)
    if task in TASK_TEXT:
        description, obj = TASK_TEXT[task]
    else:
        words = task.removesuffix("-v3").split("-")
        description, obj = " ".join(words), words[0]
    return {"task": description, "object": obj}
