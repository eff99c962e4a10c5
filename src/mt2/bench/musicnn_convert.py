"""Convert the ``musicnn`` package's TensorFlow checkpoints to safetensors, without TensorFlow.

One-time command (about 1 s; the benchmark's packages, `[anchors]`, and no TensorFlow)::

    pip download --no-deps musicnn==0.1.0 -d /tmp/musicnn && unzip -q /tmp/musicnn/musicnn-0.1.0*.whl -d /tmp/musicnn
    python -m mt2.bench.musicnn_convert --package-dir /tmp/musicnn/musicnn --out ~/.cache/mt2/musicnn

(``--package-dir`` is the ``musicnn`` folder of the package, holding ``MSD_musicnn/`` and
``MTT_musicnn/``; a ``pip install --no-deps musicnn`` in any environment has one too.) It
writes ``<out>/<sha>/musicnn-msd.safetensors`` and ``musicnn-mtt.safetensors``, each with a
JSON record (the checkpoint's SHA-256, the tags, the TensorFlow name of every tensor), and
the package's licence; ``<sha>`` is the first 16 hex digits of a SHA-256 over both
checkpoints' hashes, so the same checkpoints are not converted twice. Point ``MT2_MUSICNN_WEIGHTS`` at that folder to use it
(:mod:`mt2.bench.musicnn`); the same conversion made the weights that ship in
``mt2/weights/anchors/``.

**Reading a checkpoint.** A TensorFlow checkpoint ``PREFIX`` is ``PREFIX.index``, a LevelDB
table (SSTable) mapping each variable's name to a ``BundleEntryProto`` (dtype, shape, shard,
offset, size, masked CRC-32C), and ``PREFIX.data-00000-of-00001``, the tensors' raw
little-endian bytes. :func:`read_checkpoint` parses both (uncompressed blocks, one shard:
what TensorFlow writes) and checks each tensor's CRC-32C. The musicnn checkpoints' prefix is
the empty name (``.index``). Optimiser slots (``/Adam``) and counters are skipped.

**Names.** ``tf.compat.v1.layers`` numbers layers in creation order; in ``build_musicnn``
they are: ``batch_normalization`` (input), then per front-end branch ``conv2d_i`` with
``batch_normalization_{i+1}`` (i = 0..4: timbral 38, 67; temporal 128, 64, 32), the mid-end
``conv2d_{5,6,7}`` with ``batch_normalization_{6,7,8}``, the back end
``batch_normalization_9``, ``dense``, ``batch_normalization_10``, ``dense_1``. Layouts:
conv kernels ``(h, w, in, out)`` -> ``(out, in, h, w)``; mid-end kernels ``(7, C, 1, out)``
-> ``(out, C, 7)``; dense kernels ``(in, out)`` -> ``(out, in)``; batch norm gamma, beta,
moving mean and variance -> weight, bias, running_mean, running_var.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np

from mt2.bench.musicnn import MODELS, Musicnn

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_BYTES = 48
#: TensorFlow DataType enum -> numpy dtype (the ones a checkpoint of these models holds).
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64}
SKIPPED = ("/Adam", "beta1_power", "beta2_power", "global_step")
LABELS = {"MSD_musicnn": "MSD_LABELS", "MTT_musicnn": "MTT_LABELS"}
LICENCE_FILE = "LICENSE.md"


class CheckpointFormatError(ValueError):
    """A checkpoint file that is not what TensorFlow writes; the message names the file."""


# ----------------------------------------------------------------------------- CRC-32C


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of ``data``."""
    crc, table = 0xFFFFFFFF, _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    """TensorFlow's stored form of a CRC: ``rotate_right(crc, 15) + 0xa282ead8`` (mod 2**32)."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- protobuf and SSTable


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _fields(message: bytes):
    """``(field number, value)`` of a protobuf message: ints for varint and fixed fields, bytes for length-delimited."""
    pos = 0
    while pos < len(message):
        key, pos = _varint(message, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", message, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", message, pos)[0], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        yield number, value


def _block(table: bytes, offset: int, size: int, source: Path):
    """``(key, value)`` of one SSTable block (prefix-compressed keys, restart array at the end)."""
    if table[offset + size] != 0:
        raise CheckpointFormatError(f"{source}: a compressed table block (type {table[offset + size]}); "
                                    "only uncompressed blocks (what TensorFlow writes) are read: re-save the checkpoint")
    block = table[offset:offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end, pos, key = len(block) - 4 * (restarts + 1), 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + length]
        pos += length


def _handle(data: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(data, pos)
    size, pos = _varint(data, pos)
    return offset, size, pos


def read_index(index_file: Path) -> dict[str, dict]:
    """Every entry of a checkpoint's ``.index``: name -> ``dtype``, ``shape``, ``shard``, ``offset``, ``size``, ``crc``.

    Raises:
        CheckpointFormatError: not a LevelDB table, compressed blocks, or several shards.
    """
    table = index_file.read_bytes()
    if len(table) < FOOTER_BYTES or struct.unpack_from("<Q", table, len(table) - 8)[0] != TABLE_MAGIC:
        raise CheckpointFormatError(f"{index_file}: not a TensorFlow checkpoint index (no table magic at its end); "
                                    "pass the musicnn package folder that holds MSD_musicnn/.index")
    _, _, pos = _handle(table, len(table) - FOOTER_BYTES)  # the metaindex block: unused
    index_offset, index_size, _ = _handle(table, pos)
    entries = {}
    for _, handle in _block(table, index_offset, index_size, index_file):
        offset, size, _ = _handle(handle)
        for key, value in _block(table, offset, size, index_file):
            if not key:  # the BundleHeaderProto: field 1 is the number of shards
                shards = dict(_fields(value)).get(1, 1)
                if shards != 1:
                    raise CheckpointFormatError(f"{index_file}: {shards} shards; only single-shard checkpoints are read")
                continue
            entry = {"dtype": 1, "shape": [], "shard": 0, "offset": 0, "size": 0, "crc": None}
            for number, field in _fields(value):
                if number == 2:
                    entry["shape"] = [dict(_fields(dim)).get(1, 0) for n, dim in _fields(field) if n == 2]
                elif number in (1, 3, 4, 5, 6):
                    entry[{1: "dtype", 3: "shard", 4: "offset", 5: "size", 6: "crc"}[number]] = field
            entries[key.decode()] = entry
    return entries


def read_checkpoint(prefix: str, skip: tuple[str, ...] = SKIPPED) -> dict[str, np.ndarray]:
    """The tensors of checkpoint ``prefix`` (``prefix + ".index"`` and ``prefix + ".data-00000-of-00001"``;
    ``"FOLDER/"`` for the musicnn checkpoints), except names containing any of ``skip``; each
    tensor's CRC-32C checked.

    Raises:
        CheckpointFormatError: unreadable files, an unknown dtype or a CRC mismatch.
    """
    index_file, data_file = Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")
    for path in (index_file, data_file):
        if not path.is_file():
            raise CheckpointFormatError(f"{path}: missing; pass the musicnn package folder (holding MSD_musicnn/ and MTT_musicnn/)")
    data = data_file.read_bytes()
    tensors = {}
    for name, entry in read_index(index_file).items():
        if any(part in name for part in skip):
            continue
        if entry["dtype"] not in DTYPES:
            raise CheckpointFormatError(f"{index_file}: {name} has TensorFlow dtype {entry['dtype']}, not one of {sorted(DTYPES)}")
        raw = data[entry["offset"]:entry["offset"] + entry["size"]]
        if len(raw) != entry["size"] or (entry["crc"] is not None and masked(crc32c(raw)) != entry["crc"]):
            raise CheckpointFormatError(f"{data_file}: {name} is truncated or damaged (size or CRC-32C mismatch); "
                                        "reinstall the musicnn package")
        tensors[name] = np.frombuffer(raw, dtype=np.dtype(DTYPES[entry["dtype"]]).newbyteorder("<")).reshape(entry["shape"])
    return tensors


# ----------------------------------------------------------------------------- conversion


def tensor_names() -> dict[str, tuple[str, str]]:
    """The network's state name -> (TensorFlow name, layout) (module doc, "Names")."""
    names: dict[str, tuple[str, str]] = {}

    def norm(prefix: str, index: int) -> None:
        suffix = f"_{index}" if index else ""
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
            names[f"{prefix}.{ours}"] = (f"batch_normalization{suffix}/{theirs}", "vector")

    norm("input_norm", 0)
    branches = [f"timbral.{i}" for i in range(2)] + [f"temporal.{i}" for i in range(3)] + [f"midend.{i}" for i in range(3)]
    for i, branch in enumerate(branches):
        conv = f"conv2d_{i}" if i else "conv2d"
        names[f"{branch}.conv.weight"] = (f"{conv}/kernel", "conv1d" if branch.startswith("midend") else "conv2d")
        names[f"{branch}.conv.bias"] = (f"{conv}/bias", "vector")
        norm(f"{branch}.norm", i + 1)
    norm("pool_norm", 9)
    names["dense.weight"], names["dense.bias"] = ("dense/kernel", "dense"), ("dense/bias", "vector")
    norm("dense_norm", 10)
    names["tagger.weight"], names["tagger.bias"] = ("dense_1/kernel", "dense"), ("dense_1/bias", "vector")
    return names


def _layout(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "conv2d":
        return array.transpose(3, 2, 0, 1)
    if layout == "conv1d":
        return array[:, :, 0, :].transpose(2, 1, 0)
    if layout == "dense":
        return array.T
    return array


def checkpoint_hash(folder: Path) -> str:
    """SHA-256 of a checkpoint folder's ``.index`` and ``.data-00000-of-00001`` (in that order)."""
    sha = hashlib.sha256()
    for name in (".index", ".data-00000-of-00001"):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; pass the musicnn package folder (holding MSD_musicnn/ and MTT_musicnn/)")
        sha.update(path.read_bytes())
    return sha.hexdigest()


def package_labels(package_dir: Path, model: str) -> list[str]:
    """The tag names of ``model`` from the package's ``configuration.py`` (read as literals, not run)."""
    source = package_dir / "configuration.py"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: missing; pass the musicnn package folder (holding configuration.py and the checkpoints)")
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == LABELS[model] for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise ValueError(f"{source}: no {LABELS[model]} list")


def convert_checkpoint(package_dir: Path, model: str) -> tuple[dict, dict]:
    """The network state of checkpoint ``model`` (torch tensors, shapes checked) and its JSON record."""
    import torch

    folder = package_dir / model
    tensors = read_checkpoint(f"{folder}/")
    tags = package_labels(package_dir, model)
    state, sources = {}, {}
    for name, (theirs, layout) in tensor_names().items():
        if theirs not in tensors:
            raise CheckpointFormatError(f"{folder}: no tensor {theirs!r}; not a musicnn checkpoint ({model})")
        state[name] = torch.from_numpy(np.array(_layout(tensors[theirs], layout), dtype=np.float32, order="C"))
        sources[name] = theirs
    Musicnn(tags=len(tags)).load_state_dict(state, strict=True)
    record = {
        "model": model, "checkpoint_sha256": checkpoint_hash(folder), "source": f"musicnn 0.1.0 (PyPI), {model}/",
        "licence": "ISC, Music Technology Group, Universitat Pompeu Fabra 2019: see LICENSE-musicnn.md",
        "tags": tags, "tensors": sources,
    }
    return state, record


def convert(package_dir: Path, out: Path) -> Path:
    """Convert every checkpoint of :data:`MODELS` into ``out/<sha16>/`` and return that folder.

    ``<sha16>``: the first 16 hex digits of the SHA-256 of the checkpoints' hashes in
    :data:`MODELS` order; a folder that already holds this conversion is returned as it is.
    """
    from safetensors.torch import save_file

    digests = [checkpoint_hash(package_dir / model) for model in MODELS]
    target = out / hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
    if all((target / f"{stem}{suffix}").is_file() for stem in MODELS.values() for suffix in (".safetensors", ".json")):
        return target
    converted = {model: convert_checkpoint(package_dir, model) for model in MODELS}  # all read before anything is written
    target.mkdir(parents=True, exist_ok=True)
    for model, (state, record) in converted.items():
        save_file(state, target / f"{MODELS[model]}.safetensors")
        (target / f"{MODELS[model]}.json").write_text(json.dumps(record, indent=1) + "\n")
    licence = sorted(package_dir.parent.glob(f"musicnn-*.dist-info/{LICENCE_FILE}"))
    if licence:
        (target / "LICENSE-musicnn.md").write_text(licence[0].read_text())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mt2.bench.musicnn_convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--package-dir", type=Path, required=True, help="the musicnn package folder (holds MSD_musicnn/, MTT_musicnn/)")
    parser.add_argument("--out", type=Path, required=True, help="cache root; the weights go to OUT/<sha256[:16]>/")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        target = convert(args.package_dir.expanduser(), args.out.expanduser())
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{target} ({time.perf_counter() - start:.1f} s); use it with MT2_MUSICNN_WEIGHTS={target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
