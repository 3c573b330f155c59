"""Compiled programs kept per process, keyed by the structure of the tape they came from.

Lowering a tape costs milliseconds; running it, microseconds. A worker that trains the
same architecture twice should lower it once. The key is a hash of everything the program
is built from:

- each node's id, op and operand indices, in tape order; which leaves are placeholders,
  which are params, and the outputs;
- the attributes of every other node: a constant's value (it is baked into the program),
  pow's exponent, a dot's length;
- how it is lowered: fused already or not, `scalar_below`.

Left out, because the program reads them at run time, never at compile time: the values
of placeholders and params (the data and the parameters), and everything around the
program: the loss, the optimizer and its learning rate, the batch size (each batch size
gets its own arrays in Program.copy()'s memories). Two tapes that differ in anything
else get different keys, so they never share a program.

Each caller gets Program.copy(): the compiled parts shared, run-time arrays of its own.
The cache is bounded by count and by an estimate of the bytes its programs hold; the least
recently used goes first. A forked process (an rq work-horse) inherits its parent's cache.
"""

import hashlib
import threading
from collections import OrderedDict
from itertools import chain

import numpy as np

from .program import SCALAR_BELOW, Program

KEY_VERSION = 1  # bump when the lowering changes what a key's program is
MAX_PROGRAMS = 64
MAX_BYTES = 128 * 2**20  # five 100,000-parameter models, or hundreds of small ones


def structure_key(tape, fused=False, scalar_below=SCALAR_BELOW):
    """A digest of what a Program built from this tape depends on (module docstring)."""
    n = len(tape.ops)
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((KEY_VERSION, n, bool(fused), scalar_below)).encode())
    for names in (tape.ops, tape.ids):
        h.update("\0".join(names).encode())
        h.update(b"|")
    h.update(np.fromiter(map(len, tape.inputs), np.intp, n).tobytes())
    h.update(np.fromiter(chain.from_iterable(tape.inputs), np.intp).tobytes())
    for indices in (tape.placeholders, tape.params, tape.outputs):
        h.update(np.asarray(indices, np.intp).tobytes())
        h.update(b"|")
    attrs = np.empty(n, object)
    attrs[:] = tape.attrs
    unfed = np.ones(n, bool)
    unfed[np.asarray([*tape.placeholders, *tape.params], np.intp)] = False
    # repr is exact for floats (and tells 0.0 from -0.0); fed leaves' values are not hashed
    h.update(repr(attrs[unfed].tolist()).encode())
    return h.digest()


def program_bytes(program):
    """About the bytes a program holds (its tape and index arrays; no run-time arrays)."""
    tape = program.tape
    # lists, tuples, ids: 200 bytes a node puts 2-64-64-1 and 2-320-300-1 within 25% of
    # tracemalloc's count
    total = 200 * len(tape.ops) + 8 * sum(map(len, tape.inputs))
    total += sum(a.nbytes for a in program.layout if isinstance(a, np.ndarray))
    total += program.initial_u.nbytes
    for _, kernel in program.kernels:
        for part in vars(kernel).values():
            for a in part if isinstance(part, list | tuple) else (part,):
                total += a.nbytes if isinstance(a, np.ndarray) else 0
    return total


class ProgramCache:
    """Programs by structure_key, least recently used first out; thread-safe."""

    def __init__(self, max_programs=MAX_PROGRAMS, max_bytes=MAX_BYTES):
        self.max_programs, self.max_bytes = max_programs, max_bytes
        self._programs = OrderedDict()  # key -> (program, its bytes)
        self._lock = threading.Lock()
        self.nbytes = self.hits = self.misses = 0

    def program(self, tape, scalar_below=SCALAR_BELOW, fused=False):
        """A Program for this tape: a copy of the cached one, or a fresh compile (kept)."""
        key = structure_key(tape, fused, scalar_below)
        with self._lock:
            entry = self._programs.get(key)
            if entry is not None:
                self._programs.move_to_end(key)
                self.hits += 1
                return entry[0].copy()
            self.misses += 1
        program = Program(tape, scalar_below, fused)  # outside the lock: it takes a while
        self._keep(key, program)
        return program.copy()

    def _keep(self, key, program):
        size = program_bytes(program)
        if size > self.max_bytes or self.max_programs < 1:
            return
        with self._lock:
            old = self._programs.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            self._programs[key] = (program, size)
            self.nbytes += size
            while len(self._programs) > self.max_programs or self.nbytes > self.max_bytes:
                _, (_, dropped) = self._programs.popitem(last=False)
                self.nbytes -= dropped

    def __len__(self):
        return len(self._programs)

    def __contains__(self, key):
        return key in self._programs

    def clear(self):
        with self._lock:
            self._programs.clear()
            self.nbytes = self.hits = self.misses = 0


PROGRAMS = ProgramCache()  # this process's; training's backend compiles through it
