# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

r"""Write TRUST's captions table (image_path,caption) from a LaGTran / TRUST ``metadata.json``.

The official DomainNet and GeoNet captions come in a JSON file whose splits (``"<domain>_<split>"``) hold
``images`` (``id``, ``filename``) and ``metadata`` (``image_id`` and the text fields). DomainNet's caption is the
``blip2_cap`` field; GeoNet's is ``caption``, ``description`` and ``tags`` joined by commas, as the official code
joins them::

    python tools/trust_captions_csv.py --metadata datasets/DomainNet/metadata.json --field blip2_cap \\
        --root datasets/DomainNet --output datasets/DomainNet/captions.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path


def captions_from_metadata(metadata: dict, fields: list[str]) -> dict[str, str]:
    """``filename -> caption`` over every split of a metadata file; images without metadata are skipped.

    Raises:
        ValueError: a split without ``images`` / ``metadata`` lists, or a field that no entry has.
    """
    captions: dict[str, str] = {}
    for split, content in metadata.items():
        if not isinstance(content, dict) or "images" not in content or "metadata" not in content:
            msg = f"metadata split '{split}' has no 'images' and 'metadata' lists"
            raise ValueError(msg)
        texts = {entry["image_id"]: entry for entry in content["metadata"]}
        for image in content["images"]:
            entry = texts.get(image["id"])
            if entry is None:
                continue
            missing = [field for field in fields if field not in entry]
            if missing:
                msg = f"metadata split '{split}', image {image['filename']}: no field(s) {missing}"
                raise ValueError(msg)
            caption = ",".join(str(entry[field] or "") for field in fields)
            if " ".join(caption.replace(",", " ").split()):
                captions[image["filename"]] = " ".join(caption.split())
    return captions


def main(argv: list[str] | None = None) -> int:
    """Command line: read the metadata, write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--metadata", type=Path, required=True)
    parser.add_argument("--field", action="append", required=True, help="text field(s), joined by commas")
    parser.add_argument("--root", type=Path, required=True, help="folder the filenames are relative to")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    captions = captions_from_metadata(json.loads(args.metadata.read_text(encoding="utf-8")), args.field)
    base = args.output.resolve().parent
    with args.output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_path", "caption"])
        for filename, caption in sorted(captions.items()):
            image = (args.root / filename).resolve()
            writer.writerow([image.relative_to(base).as_posix() if image.is_relative_to(base) else str(image), caption])
    print(f"{len(captions)} captions -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
