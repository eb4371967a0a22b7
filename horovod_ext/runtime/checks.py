"""Argument checks shared by the optimizer front and the mode configurations: each raises
ValueError naming the argument (or ``Mode.field``) and the value it got."""
import math

import torch


def positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")


def positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")


def fraction(name, value):
    """A number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1]; got {value!r}")


def weight(name, value):
    """A number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}")


def finite_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name} must be a finite float >= 0; got {value!r}")


def non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0; got {value!r}")


def boolean(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False; got {value!r}")


def one_of(name, value, allowed):
    if value not in allowed or isinstance(value, bool):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def groups_argument(num_groups, groups):
    """Horovod's checks of ``num_groups``/``groups``; returns the groups to use (or None)."""
    if num_groups != 0:
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 0:
            raise ValueError(f"num_groups must be an int >= 0; got {num_groups!r}")
        if groups is None:
            groups = num_groups
    if groups is None:
        return None
    if isinstance(groups, int) and not isinstance(groups, bool):
        positive_int("groups", groups)
    elif isinstance(groups, list):
        ids = [id(p) for g in groups for p in g]
        if any(not isinstance(p, torch.Tensor) for g in groups for p in g):
            raise ValueError("groups must consist of torch.Tensor.")
        if len(ids) != len(set(ids)):
            raise ValueError("A parameter can only appear once in groups.")
    else:
        raise ValueError("groups should be a non-negative integer or a list of list of "
                         "torch.Tensor.")
    return groups
