"""Built-in molecule dataset: QM9's 12 property targets as regression tasks, Morgan fingerprint features.

QM9 (Ramakrishnan, Dral, Rupp & von Lilienfeld, Scientific Data 2014) is the
multi-task regression benchmark LibMTL uses. The ``qm9pack`` package (MIT, by
QM9's first author) ships its 130,831 molecules with their properties as CSV
files; features are Morgan (ECFP-like) fingerprint bits computed with RDKit.
Both come with the ``molecules`` extra (``pip install 'negtransfer[molecules]'``).

The 12 tasks are the usual ones: ``mu`` (dipole moment, debye), ``alpha``
(isotropic polarizability, bohr^3), ``homo``, ``lumo``, ``gap`` (hartree),
``r2`` (electronic spatial extent, bohr^2), ``zpve`` (hartree), ``u0``, ``u298``,
``h298``, ``g298`` (internal energy at 0 K and 298 K, enthalpy and free energy
at 298 K, hartree) and ``cv`` (heat capacity, cal/mol/K). The four energies
are nearly collinear: a natural group.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Sequence

import numpy as np

from negtransfer.data.arrays import dataset_from_arrays
from negtransfer.data.build import DataError, chosen_tasks
from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.data.packages import MissingPackageError, package_file

__all__ = ["MOLECULES_INSTALL", "QM9_SIZE", "QM9_TASKS", "load_qm9", "morgan_bits"]

#: Task name -> column of the qm9pack CSV files.
QM9_TASKS = {
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "gap": "HOMO_LUMO_gap_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "u0": "InternalEnergy_0K_au",
    "u298": "InternalEnergy_298K_au",
    "h298": "Enthalphy_298K_au",
    "g298": "GibbsFreeEnergy_298K_au",
    "cv": "Heatcapacity_Cv_cal_mol_K",
}
QM9_SIZE = 130831
MOLECULES_INSTALL = "pip install 'negtransfer[molecules]' (qm9pack and rdkit)"
QM9_LICENSE = ("QM9 (Ramakrishnan et al. 2014) is CC0 at figshare; qm9pack (the copy read here) is MIT; "
               "RDKit is BSD-3-Clause")
QM9_DESCRIPTION = "QM9 molecules: Morgan fingerprint bits -> 12 quantum-chemical properties (mu, alpha, ..., cv)"
_PARTS = ("data/qm9_part1.csv", "data/qm9_part2.csv", "data/qm9_part3.csv")


def _require_packages() -> None:
    missing = [p for p in ("qm9pack", "rdkit") if importlib.util.find_spec(p) is None]
    if missing:
        raise MissingPackageError(f"the qm9 dataset needs {' and '.join(missing)}, not installed: {MOLECULES_INSTALL}")


def morgan_bits(smiles: Sequence[str], *, radius: int = 2, n_bits: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Morgan fingerprint bits of each SMILES string (RDKit).

    Parameters
    ----------
    smiles : sequence of str
    radius : int
        Morgan radius (2 is ECFP4-like).
    n_bits : int
        Fingerprint length.

    Returns
    -------
    tuple of ndarray
        ``(bits, parsed)``: bits (n, n_bits) uint8, zero rows where RDKit could
        not parse the SMILES; ``parsed`` (n,) bool.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    rdBase.DisableLog("rdApp.*")  # a parse failure is counted, not printed
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    bits = np.zeros((len(smiles), n_bits), dtype=np.uint8)
    parsed = np.zeros(len(smiles), dtype=bool)
    for i, text in enumerate(smiles):
        molecule = Chem.MolFromSmiles(str(text))
        if molecule is not None:
            bits[i] = generator.GetFingerprintAsNumPy(molecule)
            parsed[i] = True
    return bits, parsed


def load_qm9(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    n_molecules: int | None = 5000,
    subset_seed: int = 0,
    radius: int = 2,
    n_bits: int = 1024,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> MultiTaskDataset:
    """QM9's 12 property targets as regression tasks on Morgan fingerprint bits.

    Parameters
    ----------
    seed : int
        Fixes the split (seeded, unstratified: regression tasks).
    tasks : sequence of str, optional
        A subset of :data:`QM9_TASKS` (``mu`` ... ``cv``); default all 12.
    n_molecules : int or None
        A random subset of this many molecules, drawn with ``subset_seed`` (the
        same molecules for every split seed); None: all 130,831 (about a
        minute for the fingerprints).
    subset_seed : int
        Draws the subset.
    radius, n_bits : int
        Morgan fingerprint radius and length.
    fractions : (float, float, float)

    Returns
    -------
    MultiTaskDataset
        Kind ``table``: ``X`` (n, n_bits) fingerprint bits, 0/1 as computed (not
        standardised); targets standardised per task with training statistics;
        ``info["qm9_index"]`` each row's QM9 molecule number.

    Raises
    ------
    MissingPackageError
        qm9pack or rdkit is missing (the ``molecules`` extra).
    """
    names = chosen_tasks(tasks, tuple(QM9_TASKS), "qm9")
    if n_molecules is not None and (isinstance(n_molecules, bool) or not isinstance(n_molecules, (int, np.integer))
                                    or not 20 <= n_molecules <= QM9_SIZE):
        raise DataError(f"n_molecules must be a whole number from 20 to {QM9_SIZE}, or None for all, got {n_molecules!r}")
    for option, value, low in (("radius", radius, 0), ("n_bits", n_bits, 8)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DataError(f"{option} must be a whole number >= {low}, got {value!r}")
    _require_packages()  # checked on every call (the cached part below would skip it)
    table, bits, dropped = _fingerprinted(n_molecules, int(subset_seed), int(radius), int(n_bits))
    Y = table[[QM9_TASKS[t] for t in names]].to_numpy(dtype=np.float64)
    ds = dataset_from_arrays(
        bits, Y, task_names=names, task_kinds={t: "regression" for t in names}, scale="none",
        feature_names=[f"morgan{i}" for i in range(n_bits)], seed=seed, fractions=fractions, name="qm9",
        info={"source": "qm9pack package files data/qm9_part1..3.csv", "license": QM9_LICENSE,
              "description": QM9_DESCRIPTION, "n_molecules": int(len(table)), "subset_seed": int(subset_seed),
              "unparsed_smiles_dropped": dropped, "fingerprint": f"Morgan radius {radius}, {n_bits} bits",
              "task_columns": {t: QM9_TASKS[t] for t in names}},
    )
    ds.info["qm9_index"] = table["Index"].to_numpy().copy()
    return ds


@functools.lru_cache(maxsize=2)
def _fingerprinted(n_molecules: int | None, subset_seed: int, radius: int, n_bits: int):
    """The molecules (QM9 rows whose SMILES parsed), their fingerprint bits and how many were dropped.

    Independent of the split seed, so it is computed once per process and setting (a job that loads QM9 for
    several seeds or runs reuses it; with every molecule the fingerprints take about a minute). Callers must not
    modify what it returns (the dataset builder copies ``bits``).
    """
    import pandas as pd

    columns = ["Index", "SMILES", *QM9_TASKS.values()]
    paths = [package_file("qm9pack", part, install=MOLECULES_INSTALL) for part in _PARTS]
    try:
        table = pd.concat([pd.read_csv(p, usecols=columns) for p in paths], ignore_index=True)
    except ValueError as exc:
        raise DataError(f"the qm9pack CSV files lack a column this loader reads ({exc}); qm9pack 1.0.3 works") from None
    if n_molecules is not None and n_molecules < len(table):
        chosen = np.sort(np.random.default_rng(subset_seed).choice(len(table), size=n_molecules, replace=False))
        table = table.iloc[chosen].reset_index(drop=True)
    bits, parsed = morgan_bits(table["SMILES"].tolist(), radius=radius, n_bits=n_bits)
    return table[parsed].reset_index(drop=True), bits[parsed], int((~parsed).sum())
