"""Parse a big CSV file in a child Python process while this one writes: the two halves of an import on two cores.

Why: a million-row import is about half Python parsing and half database work (our thread encoding the rows and
the server, or SQLite, storing them). In one process the parser and the thread that feeds the database share the
interpreter lock: every time the feeding thread came back from the server (a statement's result, a full socket
during ``COPY``) it could wait up to the interpreter's switch interval for the parser to let go of the lock, and
the server sat idle meanwhile (measured on 200,000 rows: the writer thread blocked 470-610 times beside the
parser, about 300 times with the parser in a child). A child process parses on its own core and hands over
finished chunks; this process only writes. Used for PostgreSQL (``csv_import.PARSE_PROCESS_DIALECTS``).

The child runs ``main(PATH, ENCODING, CHUNK_ROWS)`` below in the same interpreter, from the same ``subscribers``
package as the parent, importing only ``subscribers.csv_rows`` (no database code: it starts
in a fraction of a second). It writes one pickle per message on its standard output: a chunk (rows as tuples and
its lines' report), an unreadable line, the end, or its own failure. The parent reads them in order; the pipe's
buffer keeps the child at most a chunk or two ahead, so memory stays bounded. The child reads only the file it
was given and ends by itself at the end of the file; if the import stops early the parent ends it (by its own
process handle).
"""

from __future__ import annotations

import csv
import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from subscribers.csv_rows import Chunk, ImportReport, Row, RowParser, UnreadableLine, read_chunks

#: The child's program: ``main`` below, imported from the parent's own copy of the package (argv[1]).
_CHILD = ("import sys; root = sys.argv[1]; sys.path[:0] = [] if root in sys.path else [root]; "
          "from subscribers.parse_process import main; sys.exit(main(sys.argv[2:]))")
#: How long the parent waits for a child that said it is done to exit, before ending it.
_EXIT_WAIT_SECONDS = 10.0


class ParseProcessError(RuntimeError):
    """The parser process failed or ended without finishing (killed, out of memory, a message cut short): the
    import turns it into a one-line ``CsvImportError`` naming the file."""


class ParseProcess:
    """``with ParseProcess(path, encoding, chunk_rows) as chunks: for chunk, part in chunks: ...``

    The chunks are those ``subscribers.csv_rows.read_chunks`` gives in this process, in the same order, with the
    same reports; an unreadable line raises ``UnreadableLine`` after the chunk read before it, as there.
    """

    def __init__(self, path: Path, encoding: str, chunk_rows: int) -> None:
        self._args = [str(path), encoding, str(chunk_rows)]
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        """False where there is no interpreter to start (an embedded Python): the file is then parsed here."""
        return bool(sys.executable) and os.path.isfile(sys.executable)

    def __enter__(self) -> Iterator[Chunk]:
        # The child imports the very package this process runs (a checkout, not another installed copy): its
        # folder goes first on the child's path, unless it is already there (an installed package). -P: not the
        # current folder, which may hold another checkout.
        package_root = str(Path(__file__).resolve().parents[1])
        self._proc = subprocess.Popen([sys.executable, "-P", "-c", _CHILD, package_root, *self._args],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        return self._chunks()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdout is not None
        proc.stdout.close()  # a child still writing gets a broken pipe
        try:
            proc.wait(timeout=_EXIT_WAIT_SECONDS if error is None else 0.5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _chunks(self) -> Iterator[Chunk]:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        while True:
            try:
                message = pickle.load(stream)
            except (EOFError, pickle.UnpicklingError):  # gone, or killed in the middle of a message
                code = self._proc.wait()
                raise ParseProcessError(f"the parser process ended without finishing (exit code {code})") from None
            kind = message[0]
            if kind == "chunk":
                _, rows, lines, merged, skipped, errors = message
                yield ({fields[1]: Row(*fields) for fields in rows},
                       ImportReport(rows=lines, merged=merged, skipped=skipped, errors=errors))
            elif kind == "unreadable":
                raise UnreadableLine(message[1], message[2])
            elif kind == "done":
                return
            else:
                raise ParseProcessError(f"the parser process failed: {message[1]}")


def _send(out: IO[bytes], message: tuple[Any, ...]) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def serve(path: str, encoding: str, chunk_rows: int, out: IO[bytes]) -> None:
    """The child's work: every chunk of ``path`` as messages on ``out``, then the end."""
    with open(path, encoding=encoding, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        parser = RowParser([(f or "").strip().lower() for f in header or []])
        try:
            for chunk, part in read_chunks(reader, parser, chunk_rows):
                # tuples, not Row objects: a slots dataclass pickles through a Python call per object
                _send(out, ("chunk", [row.astuple() for row in chunk.values()], part.rows, part.merged,
                            part.skipped, part.errors))
        except UnreadableLine as exc:
            _send(out, ("unreadable", exc.line, exc.why))
            return
    _send(out, ("done",))


def main(argv: list[str]) -> int:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but messages on the pipe
    path, encoding, chunk_rows = argv
    try:
        serve(path, encoding, int(chunk_rows), out)
    except BrokenPipeError:
        # the parent stopped reading (its import failed or was interrupted); what is left unsent goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 1
    except BaseException:  # handed to the parent, which raises it as the import's error
        try:
            _send(out, ("failed", traceback.format_exc(limit=-3).strip().splitlines()[-1]))
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 1
    return 0


__all__ = ["ParseProcess", "ParseProcessError", "main", "serve"]
