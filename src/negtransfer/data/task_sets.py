"""A set of tasks as one value: :class:`TaskSet`.

Inside negtransfer a group of tasks is a :class:`TaskSet`, the sorted indices
of its tasks into the dataset's task list. It *is* that sorted tuple (a
``tuple`` subclass, equal to and hashing like the plain tuple), so a
``TaskSet`` finds the entries of dictionaries keyed by plain task-index tuples
(the run store's results) and the other way round. Task names are attached at
the edges only (reports, the command line), with :meth:`TaskSet.names` and
:meth:`TaskSet.from_names`; the other forms a group takes on its way through
the code convert here too: a boolean row over the tasks (:meth:`to_mask`,
:meth:`from_mask`, the rows of :func:`negtransfer.select.groups.all_groups`)
and the ``"0+1"`` key text (:meth:`key`, :meth:`from_key`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["TaskSet"]


class TaskSet(tuple):
    """The sorted, distinct indices of a set of tasks; equal to the plain sorted tuple.

    Parameters
    ----------
    tasks : iterable of int
        Task indices (0-based, into the dataset's task list), in any order;
        duplicates are dropped.

    Raises
    ------
    ValueError
        If an index is negative or not a whole number.

    Examples
    --------
    >>> TaskSet([2, 0, 2])
    TaskSet(0, 2)
    >>> TaskSet([0, 2]) == (0, 2) and hash(TaskSet([0, 2])) == hash((0, 2))
    True
    >>> TaskSet.from_names(["b", "a"], ["a", "b", "c"]).key()
    '0+1'
    """

    __slots__ = ()

    def __new__(cls, tasks: Iterable[int] = ()) -> TaskSet:
        indices = set()
        for t in tasks:
            if isinstance(t, (bool, np.bool_)) or int(t) != t or int(t) < 0:
                raise ValueError(f"a task set holds task indices (whole numbers >= 0), got {t!r}")
            indices.add(int(t))
        return super().__new__(cls, sorted(indices))

    def __repr__(self) -> str:
        return f"TaskSet({', '.join(map(str, self))})"

    # ------------------------------------------------------------- constructors
    @classmethod
    def all_tasks(cls, n_tasks: int) -> TaskSet:
        """Every one of ``n_tasks`` tasks (the all-task group)."""
        return cls(range(n_tasks))

    @classmethod
    def singletons(cls, n_tasks: int) -> list[TaskSet]:
        """One set per task, in task order (the STL groups)."""
        return [cls((t,)) for t in range(n_tasks)]

    @classmethod
    def from_mask(cls, mask: Sequence[bool] | np.ndarray) -> TaskSet:
        """The tasks whose entry of a boolean row is true."""
        row = np.asarray(mask)
        if row.ndim != 1:
            raise ValueError(f"a task mask is one row of booleans, got an array of shape {row.shape}")
        return cls(int(i) for i in np.flatnonzero(row))

    @classmethod
    def from_names(cls, names: Iterable[str], task_names: Sequence[str]) -> TaskSet:
        """The tasks called ``names`` among ``task_names`` (the dataset's task list).

        Raises
        ------
        ValueError
            Naming the unknown task and the known ones.
        """
        index = {name: i for i, name in enumerate(task_names)}
        out = []
        for name in names:
            if name not in index:
                raise ValueError(f"unknown task {name!r}; the tasks are: {', '.join(map(str, task_names))}")
            out.append(index[name])
        return cls(out)

    @classmethod
    def from_key(cls, key: str) -> TaskSet:
        """The set written as its key text, ``"0+1"`` (see :meth:`key`)."""
        try:
            return cls(int(part) for part in key.split("+"))
        except ValueError as exc:
            raise ValueError(f"a task-set key is task indices joined by '+', such as '0+2'; got {key!r}") from exc

    # ------------------------------------------------------------- conversions
    def to_mask(self, n_tasks: int) -> np.ndarray:
        """A boolean row over ``n_tasks`` tasks, true for the members."""
        if self and self[-1] >= n_tasks:
            raise ValueError(f"task index {self[-1]} is out of range for {n_tasks} tasks")
        row = np.zeros(n_tasks, dtype=bool)
        row[list(self)] = True
        return row

    def names(self, task_names: Sequence[str]) -> list[str]:
        """The members' names, in task order."""
        return [task_names[t] for t in self]

    def key(self) -> str:
        """The key text, indices joined by ``+`` (``"0+1"``); :meth:`from_key` reads it back."""
        return "+".join(map(str, self))

    def label(self, task_names: Sequence[str], sep: str = " + ") -> str:
        """The members' names joined by ``sep`` (``"a + b"``), as reports show a group."""
        return sep.join(map(str, self.names(task_names)))
