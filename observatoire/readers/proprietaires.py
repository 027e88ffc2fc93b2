"""Reader of the parcels' owners (``proprietaires``).

The DGFiP open file « parcelles des personnes morales » (CSV ``;``, latin-1 or
UTF-8, one row per owner right) or any table keyed by IDU. Natural persons are never
named: only rows recognised as legal entities keep a name.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from observatoire.config import Source
from observatoire.errors import SchemaError, SourceError, where
from observatoire.readers.gdal import check_file, pick_layer, read_vector
from observatoire.readers.lineage import ReadResult, SourceReport, new_report, relative_name
from observatoire.schema import LINEAGE

#: Owner-table columns: the DGFiP file (names normalised: no accent, no parenthesis,
#: lower case) and common names of other tables.
DGFIP_COLUMNS = {
    "departement": ["departement"],
    "commune": ["code commune"],
    "prefixe": ["prefixe"],
    "section": ["section"],
    "numero": ["n plan", "no plan", "numero plan", "n de plan"],
    "siren": ["n siren", "no siren", "siren"],
    "groupe": ["groupe personne", "groupe de personne"],
    "forme": ["forme juridique abregee"],
    "nom": ["denomination"],
    "droit": ["code droit"],
}


#: Rights held by an owner in the DGFiP file (propriétaire, nu-propriétaire, bailleur à
#: construction, foncier, bailleur à réhabilitation); managers, occupants, usufructuaries
#: and lessees are not owners.
PROPRIETAIRE_DROITS = {"P", "N", "B", "F", "V"}


#: DGFiP « groupe de personne » (the suffix A marks Alsace-Moselle agricultural funds).
GROUPES = {
    "0": "personne morale non remarquable", "1": "État", "2": "région", "3": "département",
    "4": "commune", "5": "office HLM", "6": "société d'économie mixte",
    "7": "copropriété", "8": "associés", "9": "établissement public",
}


TABLE_FIELDS = {
    "idu": ["idu", "id_parcelle", "idpar", "code_parcelle", "parcelle", "id_par"],
    "proprietaire_cle": ["proprietaire_id", "id_proprietaire", "compte", "compte_communal",
                         "dnupro", "idprocpte"],
    "proprietaire_type": ["proprietaire_type", "type_proprietaire", "type"],
    "proprietaire_nom": ["proprietaire_nom", "denomination", "raison_sociale", "nom"],
    "proprietaire_siren": ["proprietaire_siren", "siren"],
    "proprietaire_forme": ["proprietaire_forme", "forme_juridique"],
}


PROPRIETAIRES_COLUMNS = ["idu", "proprietaire_cle", "proprietaire_type", "proprietaire_nom",
                 "proprietaire_siren", "proprietaire_forme", "proprietaire_groupe", LINEAGE]


_IDU = re.compile(r"^(\d{2}|2A|2B)\d{3}[0-9A-Z]{3}[0-9A-Z]{2}\d{4}$")


_SIREN = re.compile(r"^\d{9}$")


def normalise_name(name: str) -> str:
    """Column name without accents, parentheses or punctuation, lower case.

    ``N° SIREN (Propriétaire(s) parcelle)`` → ``n siren``.
    """
    head = str(name).split("(")[0]
    norm = unicodedata.normalize("NFKD", head).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", " ", norm).strip()


def _read_table(path: Path, source: Source) -> pd.DataFrame:
    """Read a CSV/TXT (separator sniffed, UTF-8 then latin-1), Parquet or any GDAL table."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise SourceError(f"{path} : fichier Parquet illisible ({exc}) ; "
                              f"téléchargez-le à nouveau") from None
        return frame.astype(object).where(frame.notna(), None).astype(str).where(
            frame.notna(), None)
    if suffix in (".csv", ".txt", ".tsv"):
        encodings = [source.encoding] if source.encoding else ["utf-8-sig", "latin-1"]
        for enc in encodings:
            try:
                with path.open(encoding=enc, newline="") as f:
                    head = f.readline()
                sep = max([";", ",", "\t", "|"], key=head.count)
                return pd.read_csv(path, sep=sep, dtype=str, encoding=enc,
                                   keep_default_na=False, na_values=[""],
                                   quoting=csv.QUOTE_MINIMAL)
            except UnicodeDecodeError:
                continue
            except (pd.errors.ParserError, csv.Error) as exc:
                raise SourceError(f"{path} : CSV illisible ({str(exc)[:200]}) ; vérifiez le "
                                  f"séparateur et les guillemets") from None
        raise SourceError(f"{path} : encodage non reconnu ; indiquez-le avec la clé "
                          f"« {source.key}.encodage » (ex. \"latin-1\")")
    layer = pick_layer(path, source.layer)
    frame = read_vector(path, layer, encoding=source.encoding, read_geometry=False)
    return pd.DataFrame(frame).astype(object).where(frame.notna(), None)


def _is_dgfip(columns: list[str]) -> bool:
    names = {normalise_name(c) for c in columns}
    return {"section", "denomination"} <= names and any(n in names for n in DGFIP_COLUMNS["numero"])


def read_proprietaires(source: Source, *, crs: str, base: Path | None = None) -> ReadResult:
    """Read an owner table keyed by IDU.

    Parameters
    ----------
    source
        The ``proprietaires`` source: format ``personnes_morales`` (the DGFiP file),
        ``table`` (any table with an IDU column; map fields with ``champs``) or
        ``auto``.
    crs, base
        As the other readers (the table has no geometry).

    Returns
    -------
    ReadResult
        ``frame`` is a table (no geometry), one row per (parcel, owner):
        ``idu``, ``proprietaire_cle`` (opaque owner key), ``proprietaire_type``
        (``personne morale`` / ``personne physique`` / ``inconnu``),
        ``proprietaire_nom`` and ``proprietaire_siren`` (legal entities only),
        ``proprietaire_forme``, ``proprietaire_groupe``.

    Raises
    ------
    SchemaError
        A column needed to build the IDU is missing.
    """
    report = new_report(source.kind, source.paths, source.format, source.layer)
    frames = []
    fmt = source.format
    for path in source.paths:
        check_file(path)
        raw = _read_table(path, source)
        report.features_read += len(raw)
        this = fmt if fmt != "auto" else ("personnes_morales" if _is_dgfip(list(raw.columns))
                                          else "table")
        report.format = this
        if this == "personnes_morales":
            frame = _dgfip_proprietaires(raw, source, path, report)
        else:
            frame = _table_proprietaires(raw, source, path, report)
        frame[LINEAGE] = relative_name(path, base)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    frame = frame.drop_duplicates(["idu", "proprietaire_cle"]).sort_values(
        ["idu", "proprietaire_cle"], kind="stable").reset_index(drop=True)
    report.features_kept = len(frame)
    return ReadResult(frame[PROPRIETAIRES_COLUMNS], report)


def _find_columns(raw: pd.DataFrame, wanted: Mapping[str, list[str]],
                  overrides: Mapping[str, str], path: Path) -> dict[str, str]:
    by_norm: dict[str, str] = {}
    for col in raw.columns:
        by_norm.setdefault(normalise_name(col), col)
    found: dict[str, str] = {}
    for canon, src in overrides.items():
        if src not in raw.columns:
            raise SchemaError(
                f"{where(path, None, src)} : colonne absente (déclarée dans « champs.{canon} ») ; "
                f"colonnes : {', '.join(map(str, raw.columns[:30]))}")
        found[canon] = src
    for canon, names in wanted.items():
        if canon in found:
            continue
        for n in names:
            if n in by_norm:
                found[canon] = by_norm[n]
                break
    return found


def _dgfip_proprietaires(raw: pd.DataFrame, source: Source, path: Path, report: SourceReport
                  ) -> pd.DataFrame:
    cols = _find_columns(raw, DGFIP_COLUMNS, source.fields, path)
    for need in ("departement", "commune", "section", "numero", "nom"):
        if need not in cols:
            raise SchemaError(
                f"{where(path, None, need)} : colonne introuvable dans le fichier des parcelles "
                f"des personnes morales (cherché : {', '.join(DGFIP_COLUMNS[need])}) ; "
                f"indiquez-la avec « {source.key}.champs.{need} = \"NOM DE LA COLONNE\" »")
    s = {k: raw[v].astype(object).where(raw[v].notna(), "").astype(str).str.strip()
         for k, v in cols.items()}
    dep = s["departement"].str.zfill(2)
    commune = s["commune"]
    insee = dep + pd.Series([c.zfill(5 - len(d)) for d, c in zip(dep, commune, strict=True)],
                            index=raw.index, dtype=object)
    prefixe = s.get("prefixe", pd.Series("", index=raw.index)).replace("", "000").str.zfill(3)
    section = s["section"].str.upper().str.zfill(2)
    numero = s["numero"].str.zfill(4)
    idu = insee + prefixe + section + numero
    keep = idu.str.match(_IDU) & s["section"].ne("") & s["numero"].str.strip("0").ne("")
    report.count("lignes sans identifiant de parcelle valide écartées", int((~keep).sum()))
    if "droit" in s:
        is_proprietaire = s["droit"].str.upper().isin(PROPRIETAIRE_DROITS) | (s["droit"] == "")
        report.count("droits autres que propriétaire (gérant, usufruitier…) écartés",
                     int((keep & ~is_proprietaire).sum()))
        keep &= is_proprietaire
    siren = s.get("siren", pd.Series("", index=raw.index)).str.replace(" ", "")
    valid_siren = siren.str.match(_SIREN)
    nom = s["nom"].replace("", None)
    groupe = s.get("groupe", pd.Series("", index=raw.index)).str.upper().str.rstrip("A")
    frame = pd.DataFrame({
        "idu": idu,
        # Entities without SIREN (DGFiP gives them a pseudo-number starting with U) are
        # keyed by name.
        "proprietaire_cle": ("siren:" + siren).where(valid_siren, "nom:" + nom.fillna("")
                                                     .str.upper()),
        "proprietaire_type": "personne morale",
        "proprietaire_nom": nom,
        "proprietaire_siren": siren.where(valid_siren, None),
        "proprietaire_forme": s.get("forme", pd.Series("", index=raw.index)).replace("", None),
        "proprietaire_groupe": groupe.map(GROUPES),
    })[keep]
    empty_key = frame["proprietaire_cle"].eq("nom:")
    report.count("lignes sans SIREN ni dénomination écartées", int(empty_key.sum()))
    return frame[~empty_key].astype(object).where(frame[~empty_key].notna(), None)


def _proprietaire_type(values: pd.Series) -> pd.Series:
    v = values.astype(object).where(values.notna(), "").astype(str).map(normalise_name)
    out = pd.Series("inconnu", index=values.index, dtype=object)
    out[v.str.contains("moral") | v.isin(["pm", "m"])] = "personne morale"
    out[v.str.contains("physique") | v.isin(["pp", "p"])] = "personne physique"
    return out


def _table_proprietaires(raw: pd.DataFrame, source: Source, path: Path, report: SourceReport
                  ) -> pd.DataFrame:
    cols = _find_columns(raw, {k: [normalise_name(n) for n in v]
                               for k, v in TABLE_FIELDS.items()}, source.fields, path)
    if "idu" not in cols:
        raise SchemaError(
            f"{where(path, None, 'idu')} : colonne d'identifiant de parcelle introuvable "
            f"(cherché : {', '.join(TABLE_FIELDS['idu'])}) ; indiquez-la avec "
            f"« {source.key}.champs.idu = \"NOM DE LA COLONNE\" »")
    n = len(raw)
    empty = pd.Series([None] * n, index=raw.index, dtype=object)

    def col(name: str) -> pd.Series:
        if name not in cols:
            return empty
        c = raw[cols[name]].astype(object)
        c = c.where(c.notna(), None).map(lambda v: None if v is None else str(v).strip() or None)
        return c

    idu = col("idu").fillna("").str.upper().str.replace(" ", "")
    keep = idu.str.match(_IDU)
    report.count("lignes sans identifiant de parcelle valide écartées", int((~keep).sum()))
    siren = col("proprietaire_siren").fillna("").str.replace(" ", "")
    valid_siren = siren.str.match(_SIREN)
    kind = _proprietaire_type(col("proprietaire_type"))
    # Without a declared type, a valid SIREN means a legal entity; nothing else is assumed.
    kind = kind.where(~((kind == "inconnu") & valid_siren), "personne morale")
    legal = kind == "personne morale"
    nom = col("proprietaire_nom")
    key = col("proprietaire_cle")
    key = key.where(key.notna(), ("siren:" + siren).where(valid_siren, None))
    key = key.where(key.notna(), ("nom:" + nom.fillna("").str.upper()).where(
        legal & nom.notna(), None))
    frame = pd.DataFrame({
        "idu": idu,
        "proprietaire_cle": key,
        "proprietaire_type": kind,
        # Natural persons are never named.
        "proprietaire_nom": nom.where(legal, None),
        "proprietaire_siren": siren.where(valid_siren & legal, None),
        "proprietaire_forme": col("proprietaire_forme").where(legal, None),
        "proprietaire_groupe": None,
    })[keep]
    return frame.astype(object).where(frame.notna(), None)
