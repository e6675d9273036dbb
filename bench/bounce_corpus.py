"""How many real bounces Herald recognises and classifies right: the corpus of real bounces
that Mailman's flufl.bounce ships in its source distribution (tests/data/, 117 messages from
many mail servers), read by herald.mail.reports, against Herald's own labels
(bench/bounce_corpus_labels.csv: per file, the kind of report and each failed recipient,
hard, soft or unknown).

The corpus is not in Herald's repository: this downloads the pinned sdist from PyPI at run
time (its sha256 checked) into a temporary directory.

    .venv/bin/python bench/bounce_corpus.py            # summary and every miss
    .venv/bin/python bench/bounce_corpus.py --quiet    # the summary only

A file is *recognised* when its kind is right and, for a bounce, the failed addresses found
are exactly the labelled ones; a recipient is *classified right* when it is found with the
labelled class (recipients labelled unknown are not counted there).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from herald.mail.reports import Kind, parse_report

PACKAGE, VERSION = "flufl.bounce", "6.0.0"
SDIST = f"flufl_bounce-{VERSION}.tar.gz"
SDIST_SHA256 = "a1df16b9d1877ae4536f7d76c00d8421fcefbe694f80f5285d05c45a2547b1bc"
LABELS = Path(__file__).with_name("bounce_corpus_labels.csv")
NO_ADDRESS = "-"


def download_corpus(into: Path) -> Path:
    """The sdist's tests/data directory, extracted under ``into``."""
    index = urllib.request.Request(  # PyPI's simple index, as JSON (PEP 691)
        "https://pypi.org/simple/flufl-bounce/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(index, timeout=60) as response:  # noqa: S310 (https)
        files = json.load(response)["files"]
    (sdist,) = [f for f in files if f["filename"] == SDIST]
    with urllib.request.urlopen(sdist["url"], timeout=120) as response:  # noqa: S310
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{sdist['url']}: sha256 {digest}, expected {SDIST_SHA256}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = [
            m for m in archive.getmembers() if "/tests/data/" in m.name and m.name.endswith(".txt")
        ]
        archive.extractall(into, members=members, filter="data")
    (data_dir,) = {Path(into, m.name).parent for m in members}
    return data_dir


@dataclass(frozen=True)
class Label:
    kind: str
    recipients: dict[str, str]  # lower-cased address ("" for none) -> hard | soft | unknown


def read_labels() -> dict[str, Label]:
    lines = [line for line in LABELS.read_text().splitlines() if not line.startswith("#")]
    labels = {}
    for row in csv.DictReader(lines):
        recipients = {}
        for item in row["recipients"].split():
            address, _, kind = item.rpartition(":")
            recipients["" if address == NO_ADDRESS else address.lower()] = kind
        labels[row["file"]] = Label(row["kind"], recipients)
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    args = parser.parse_args()
    labels = read_labels()
    with tempfile.TemporaryDirectory(prefix="herald-bounce-corpus-") as tmp:
        data_dir = download_corpus(Path(tmp))
        files = sorted(data_dir.glob("*.txt"))
        missing = sorted(set(labels) - {f.name for f in files})
        unlabelled = sorted({f.name for f in files} - set(labels))
        if missing or unlabelled:
            raise SystemExit(f"labels and corpus differ: missing {missing}, new {unlabelled}")
        started = time.perf_counter()
        reports = {f.name: parse_report(f.read_bytes()) for f in files}
        elapsed = time.perf_counter() - started

    recognised = classified = classifiable = 0
    misses: list[str] = []
    by_kind: dict[str, list[int]] = {}
    for name, label in labels.items():
        report = reports[name]
        found = {r.email.lower(): ("hard" if r.hard else "soft") for r in report.recipients}
        kind_right = report.kind.value == label.kind
        addresses_right = label.kind != Kind.BOUNCE.value or set(found) == set(label.recipients)
        ok = kind_right and addresses_right
        recognised += ok
        tally = by_kind.setdefault(label.kind, [0, 0])
        tally[0] += ok
        tally[1] += 1
        if not ok:
            shown = ", ".join(f"{a or NO_ADDRESS}:{c}" for a, c in found.items())
            misses.append(f"{name}: labelled {label.kind}, read {report.kind.value} [{shown}]")
        for address, wanted in label.recipients.items():
            if wanted == "unknown":
                continue
            classifiable += 1
            if found.get(address) == wanted:
                classified += 1
            elif address in found:
                misses.append(
                    f"{name}: {address or NO_ADDRESS} labelled {wanted}, read {found[address]}"
                )

    total = len(labels)
    print(f"flufl.bounce {VERSION} corpus: {total} messages, read in {elapsed * 1000:.0f} ms")
    print(f"recognised: {recognised}/{total} ({recognised / total:.1%})")
    for kind, (right, count) in sorted(by_kind.items()):
        print(f"  {kind}: {right}/{count}")
    print(
        f"classified right (hard/soft): {classified}/{classifiable} "
        f"({classified / classifiable:.1%}) of the recipients whose reason is given"
    )
    if misses and not args.quiet:
        print("\nmisses:")
        for line in misses:
            print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
