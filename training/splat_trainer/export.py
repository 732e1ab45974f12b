"""The trained splat as a standard 3DGS .ply.

With gsplat importable the file is written by gsplat's own exporter (`gsplat.exporter.export_splats`,
format "ply", present in 1.5.3). Without it (CI, CPU) `splat_to_ply_bytes` writes the identical layout:
binary little-endian float32 vertex properties x y z, f_dc_0..2, f_rest_0..(3K-1) (channel-major, as
gsplat and the original 3DGS code), opacity (logit), scale_0..2 (log), rot_0..3 (w, x, y, z), with
non-finite splats dropped. `read_ply` reads such a file back for tests and tools.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def _gsplat_exporter():
    try:
        from gsplat.exporter import export_splats  # type: ignore[import-not-found]
    except Exception:  # gsplat missing, or present without its compiled parts on this machine
        return None
    return export_splats


def splat_to_ply_bytes(means, scales, quats, opacities, sh0, shN) -> bytes:
    """Same bytes as gsplat 1.5.3's export_splats(format="ply"). sh0 [N,1,3], shN [N,K,3], opacities [N]."""
    n = means.shape[0]
    sh0 = sh0.reshape(n, 3)
    shN = shN.permute(0, 2, 1).reshape(n, -1)
    data = torch.cat([means, sh0, shN, opacities.reshape(n, 1), scales, quats], dim=1).detach().float().cpu()
    data = data[torch.isfinite(data).all(dim=1)]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {data.shape[0]}",
              "property float x", "property float y", "property float z"]
    header += [f"property float f_dc_{j}" for j in range(3)]
    header += [f"property float f_rest_{j}" for j in range(shN.shape[1])]
    header += ["property float opacity"] + [f"property float scale_{i}" for i in range(3)]
    header += [f"property float rot_{i}" for i in range(4)] + ["end_header"]
    return ("\n".join(header) + "\n").encode() + data.numpy().astype("<f4").tobytes()


def export_ply(splats: dict[str, torch.Tensor], path: str | Path, use_gsplat: bool = True) -> str:
    """Write splats to path atomically; returns which writer was used ("gsplat" or "builtin")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = (splats["means"].detach(), splats["scales"].detach(), splats["quats"].detach(),
            splats["opacities"].detach().reshape(-1), splats["sh0"].detach(), splats["shN"].detach())
    exporter = _gsplat_exporter() if use_gsplat else None
    if exporter is not None:
        data, writer = exporter(*(a.float().cpu() for a in args), format="ply"), "gsplat"
    else:
        data, writer = splat_to_ply_bytes(*args), "builtin"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return writer


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Read a binary little-endian float32 vertex PLY into {property: array}. Raises ValueError if not one."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path} is not a PLY file (no 'ply' magic or no end_header)")
    header = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: only binary_little_endian PLY is supported")
    count, props = 0, []
    for line in header:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count = int(parts[2])
        elif parts[:1] == ["property"]:
            if parts[1] != "float":
                raise ValueError(f"{path}: property {parts[-1]} is {parts[1]}, expected float")
            props.append(parts[2])
    body = raw[end + len(b"end_header\n"):]
    if len(body) != count * len(props) * 4:
        raise ValueError(f"{path}: body has {len(body)} bytes, expected {count * len(props) * 4} (truncated?)")
    arr = np.frombuffer(body, dtype="<f4").reshape(count, len(props))
    return {name: arr[:, i] for i, name in enumerate(props)}
