"""Mutabilité (Mutafriches v1.11): the engine against the reference's vectors and rules."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STANDARDS, standard_file

from observatoire.analysis.mutabilite import (
    AUCUN_RESULTAT,
    NE_SAIT_PAS,
    criteria_details,
    evaluate,
    load_algorithm,
    reference_frame,
    round_half_up,
)
from observatoire.config import load_territory
from observatoire.errors import ConfigError

DATA = resources.files("observatoire") / "data" / "mutafriches" / "v1.11"


def vector_files() -> list:
    """Every file of reference vectors: the shipped public ones, ``vectors-*.json`` of
    ``../shared/standards/mutafriches`` and those of ``$MUTAFRICHES_VECTEURS``
    (paths separated by ``os.pathsep``), each checked exactly."""
    files = [DATA / "vecteurs-publics.json"]
    shared = STANDARDS / "mutafriches"
    if shared.is_dir():
        files += sorted(shared.glob("vectors-*.json"))
    extra = os.environ.get("MUTAFRICHES_VECTEURS", "")
    files += [Path(p) for p in extra.split(os.pathsep) if p]
    return files


def _json(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def doc() -> dict:
    return _json(DATA / "algorithme.json")


@pytest.fixture(scope="module")
def algo(doc):
    return load_algorithm(doc)


def _vectors(path) -> list[dict]:
    return _json(path)["vectors"]


def _check_vectors(vectors: list[dict], algo) -> None:
    for v in vectors:
        assert not set(v["input"]["criteria"]) & set(v["input"].get("undefinedCriteria", []))
    ev = evaluate(reference_frame([v["input"]["criteria"] for v in vectors]), algo)
    for i, v in enumerate(vectors):
        exp = v["expected"]
        for j, u in enumerate(algo.usages):
            e = exp["usages"][u]
            got = {"indice": ev.indices[i, j], "rang": int(ev.rangs[i, j]),
                   "potentiel": ev.potentiels[i, j], "avantages": ev.avantages[i, j],
                   "contraintes": ev.contraintes[i, j]}
            assert {k: got[k] for k in got if k in e} == {k: e[k] for k in got if k in e}, \
                (v["id"], u)
        if "classement" in exp:
            assert list(ev.classement()[i]) == exp["classement"], v["id"]
        f = exp["fiabilite"]
        assert ev.fiabilite[i] == f["note"], v["id"]
        if "description" in f:
            assert ev.descriptions[i] == f["description"], v["id"]
        got = {"text": ev.niveaux[i], "criteresRenseignes": ev.criteres_renseignes[i],
               "poidsRenseignes": ev.poids_renseignes[i], "poidsTotal": algo.poids_total,
               "criteresTotal": len(algo.criteres)}
        assert {k: got[k] for k in got if k in f} == {k: f[k] for k in got if k in f}, v["id"]


def test_every_public_vector_is_reproduced_exactly(algo):
    vectors = _vectors(DATA / "vecteurs-publics.json")
    assert len(vectors) == 8
    _check_vectors(vectors, algo)


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: Path(str(p)).name)
def test_every_vector_file_is_reproduced_exactly(path, algo):
    vectors = _vectors(path)
    assert vectors
    _check_vectors(vectors, algo)


def test_each_public_vector_alone_gives_the_same_result(algo):
    # A site's result does not depend on the other rows of the frame.
    for v in _vectors(DATA / "vecteurs-publics.json"):
        _check_vectors([v], algo)


def test_shipped_tables_are_the_shared_standard(doc):
    shared = standard_file("mutafriches/mutafriches-v1.11.json")
    assert json.loads(Path(shared).read_text(encoding="utf-8")) == doc
    vectors = standard_file("mutafriches/vectors-public.json")
    assert (Path(vectors).read_bytes() == (DATA / "vecteurs-publics.json").read_bytes())


def test_the_tables_hold_the_algorithm_not_the_code(algo, doc):
    assert algo.version == "v1.11"
    assert algo.usages == ("residentiel", "equipements", "culture", "tertiaire", "industrie",
                           "renaturation", "photovoltaique")
    assert algo.poids_total == 30 and len(algo.criteres) == 28
    assert {c.key: c.weight for c in algo.criteres} == doc["weights"]
    auto = algo.critere("distanceAutoroute")
    assert auto.divisor == 1000 and [p.high for p in auto.paliers] == [1, 2, 5, None]


# --------------------------------------------------------------------------- boundaries


def _bucket_scores(crit_doc: dict, interval: str) -> dict:
    name = "thresholdsScoringUnit" if "thresholdsScoringUnit" in crit_doc else "thresholds"
    for t in crit_doc[name]:
        if t["interval"] == interval:
            return t["scores"]
    raise AssertionError(interval)


def _impacts(algo, key: str, values: list) -> pd.DataFrame:
    det = criteria_details(pd.DataFrame({key: pd.Series(values, dtype=object)}), algo)
    return det[det["critere"] == key].reset_index(drop=True)


@pytest.mark.parametrize("key", ["surfaceSite", "surfaceBati", "distanceAutoroute",
                                 "distanceTransportCommun", "distanceRaccordementElectrique",
                                 "tauxLogementsVacants"])
def test_every_threshold_boundary_falls_where_the_reference_puts_it(algo, doc, key):
    crit = doc["criteria"][key]
    thresholds = crit["thresholds"]  # in the stored unit (m², m, %)
    for b in crit["boundaries"]:
        below = next(i for i, t in enumerate(thresholds)
                     if t["range"]["max"] == b["value"])
        above = below + 1
        at = above if b["belongsTo"] == "upper" else below
        cases = [(b["lastBelow"], below), (b["value"], at), (b["firstAbove"], above)]
        det = _impacts(algo, key, [c[0] for c in cases])
        for row, (value, bucket) in enumerate(cases):
            scores = thresholds[bucket]["scores"]
            got = {u: det.loc[row, f"impact_{u}"] for u in algo.usages}
            assert got == scores, (key, value, thresholds[bucket]["interval"])


@pytest.mark.parametrize("key", ["surfaceSite", "surfaceBati", "distanceAutoroute",
                                 "distanceTransportCommun", "distanceRaccordementElectrique",
                                 "tauxLogementsVacants"])
def test_special_numbers_fall_where_the_reference_puts_them(algo, doc, key):
    crit = doc["criteria"][key]
    special = {k: v for k, v in crit["specialInputsScoringFunction"].items() if k != "NaN"}
    # The special inputs are given in the scoring unit: back to the stored unit.
    factor = 1000.0 if "thresholdsScoringUnit" in crit else 1.0
    values = [float(k) * factor for k in special]
    det = _impacts(algo, key, values)
    for row, interval in enumerate(special.values()):
        got = {u: det.loc[row, f"impact_{u}"] for u in algo.usages}
        assert got == _bucket_scores(crit, interval), (key, values[row], interval)


def test_a_value_that_is_not_a_number_is_scored_as_the_reference_scores_nan(algo, doc):
    # JS compares a non-numeric value as NaN: every comparison is false.
    for key in ("surfaceSite", "surfaceBati", "tauxLogementsVacants"):
        crit = doc["criteria"][key]
        det = _impacts(algo, key, ["pas un nombre"])
        got = {u: det.loc[0, f"impact_{u}"] for u in algo.usages}
        assert got == _bucket_scores(crit, crit["specialInputsScoringFunction"]["NaN"])
        assert bool(det.loc[0, "renseigne"])


def test_potential_boundaries(algo, doc):
    from observatoire.analysis.mutabilite import _potentiel

    bounds = doc["potentiel"]["boundaries"]
    values = np.array([[b["lastBelow"], b["value"], b["firstAbove"]] for b in bounds])
    labels = {40: ("Faible", "Moyen"), 50: ("Moyen", "Bon"), 60: ("Bon", "Très bon"),
              70: ("Très bon", "Excellent")}
    got = _potentiel(values, algo)
    for i, b in enumerate(bounds):
        lo, hi = labels[b["value"]]
        assert list(got[i]) == [lo, hi, hi]
    assert list(_potentiel(np.array([0.0, 100.0, 39.9, 69.9]), algo)) == [
        "Faible", "Excellent", "Faible", "Très bon"]


def test_reliability_note_for_every_weight_sum(algo, doc):
    # Reach each weight sum with criteria answered "searched, nothing found" (renseigné,
    # never scored), the largest weights first.
    table = doc["reliability"]["noteByPoidsRenseignes"]
    by_weight = sorted(algo.criteres, key=lambda c: -c.weight)
    rows = []
    for entry in table:
        left, row = entry["poidsRenseignes"], {}
        for c in by_weight:
            if c.weight <= left:
                row[c.key] = AUCUN_RESULTAT
                left -= c.weight
        assert left == 0
        rows.append(row)
    ev = evaluate(pd.DataFrame(rows), algo)
    assert list(ev.poids_renseignes) == [e["poidsRenseignes"] for e in table]
    assert list(ev.fiabilite) == [e["note"] for e in table]
    assert list(ev.niveaux) == [e["text"] for e in table]
    assert (ev.indices == 0).all()


def test_round_half_up_is_javascript_math_round():
    x = np.array([0.5, 1.5, 2.5, 562.5, 0.49999999999999994, 312.49999999999994, 2.4999,
                  -0.5, 0.0])
    assert list(round_half_up(x)) == [1, 2, 3, 563, 0, 312, 2, 0, 0]


def test_exact_halves_round_up(algo):
    # industrie: A = 2 (surface [10 000, 15 000), +1 × 2) + 2 (not in town centre, +2 × 1)
    # + 4 (activity zone, +2 × 2) + 1 (motorway < 1 km, +2 × 0.5) = 9;
    # C = 4 (built < 5 000 m², −2 × 2) + 2 (asbestos, −1 × 2) + 1 (co-ownership, −1 × 1) = 7.
    # 9 / 16 = 0.5625 → 562.5 ‰ → 56.3 (half-even would give 56.2).
    site = {"surfaceSite": 12000, "siteEnCentreVille": False,
            "zonageReglementaire": "zone-vocation-activites", "distanceAutoroute": 400,
            "surfaceBati": 100, "presencePollution": "oui-amiante",
            "typeProprietaire": "copro-indivision"}
    ev = evaluate(reference_frame([site]), algo)
    j = algo.usages.index("industrie")
    assert ev.avantages[0, j] == 9 and ev.contraintes[0, j] == 7
    assert ev.indices[0, j] == 56.3 and ev.potentiels[0, j] == "Bon"
    # Adding a neutral criterion of weight 1 (transport ≥ 500 m): 9.5 / 17 → 55.9.
    ev = evaluate(reference_frame([{**site, "distanceTransportCommun": 800}]), algo)
    assert ev.avantages[0, j] == 9.5 and ev.contraintes[0, j] == 7.5
    assert ev.indices[0, j] == 55.9


# --------------------------------------------------------------------------- missing values


def test_ne_sait_pas_and_absent_are_ignored_and_lower_reliability(algo):
    full = {"surfaceSite": 38500, "siteEnCentreVille": False, "typeProprietaire": "prive"}
    frame = reference_frame([
        full,
        {**full, "typeProprietaire": NE_SAIT_PAS},
        {"surfaceSite": 38500, "siteEnCentreVille": False},
        {**full, "siteEnCentreVille": NE_SAIT_PAS},     # "ne-sait-pas" on a boolean
        {**full, "surfaceSite": NE_SAIT_PAS},           # and on a number
    ])
    ev = evaluate(frame, algo)
    assert list(ev.poids_renseignes) == [4, 3, 3, 3, 2]
    assert (ev.indices[1] == ev.indices[2]).all()
    no_owner = evaluate(reference_frame([{"surfaceSite": 38500, "siteEnCentreVille": False}]),
                        algo)
    assert (ev.indices[1] == no_owner.indices[0]).all()
    no_centre = evaluate(reference_frame([{"surfaceSite": 38500, "typeProprietaire": "prive"}]),
                         algo)
    assert (ev.indices[3] == no_centre.indices[0]).all()


def test_null_is_renseigne_but_not_scored(algo):
    # Every criterion "searched, nothing found": indices 0, reliability 10.
    ev = evaluate(reference_frame([{c.key: None for c in algo.criteres}]), algo)
    assert (ev.indices == 0).all() and ev.fiabilite[0] == 10
    assert ev.niveaux[0] == "Très fiable"
    assert list(ev.classement()[0]) == list(algo.usages)
    assert set(ev.potentiels[0]) == {"Faible"}


def test_nothing_known_gives_zero_and_no_reliability(algo):
    ev = evaluate(pd.DataFrame(index=range(2)), algo)
    assert (ev.indices == 0).all() and list(ev.fiabilite) == [0, 0]
    assert list(ev.niveaux) == ["Très peu fiable"] * 2
    assert list(ev.meilleur_usage) == ["residentiel"] * 2
    assert (ev.rangs == np.arange(1, 8)).all()


def test_all_neutral_site_gives_50_everywhere(algo):
    # Values neutral for every usage: distanceTransportCommun ≥ 500, RGA aucun,
    # cavités non, inondation non, risques techno false, ZAER non, ABC c, ITE plus-1km,
    # copro mixte, pollution autres composés, espèces non, zone humide non.
    site = {"distanceTransportCommun": 500, "risqueRetraitGonflementArgile": "aucun",
            "risqueCavitesSouterraines": "non", "risqueInondation": "non",
            "presenceRisquesTechnologiques": False, "zoneAccelerationEnr": "non",
            "zonageAbcLogement": "c", "distanceIte": "plus-1km", "typeProprietaire": "mixte",
            "presencePollution": "oui-autres-composes", "presenceEspecesProtegees": "non",
            "presenceZoneHumide": "non", "etatBatiInfrastructure": "degradation-moyenne",
            "zonageReglementaire": "secteur-reglement-urbanisme"}
    ev = evaluate(reference_frame([site]), algo)
    assert (ev.indices == 50).all()
    w = sum(algo.critere(k).weight for k in site)
    assert (ev.avantages == w / 2).all() and (ev.contraintes == w / 2).all()
    assert set(ev.potentiels[0]) == {"Bon"}
    assert list(ev.classement()[0]) == list(algo.usages)


def test_all_negative_site_gives_zero_but_full_reliability_of_its_criteria(algo):
    # Amiante is −1 for every usage.
    ev = evaluate(reference_frame([{"presencePollution": "oui-amiante"}]), algo)
    assert (ev.indices == 0).all() and (ev.avantages == 0).all()
    assert (ev.contraintes == 2).all()
    assert ev.poids_renseignes[0] == 2 and ev.fiabilite[0] == 0.5


def test_a_value_without_matrix_row_counts_as_renseigne_only(algo):
    ev = evaluate(reference_frame([{"zonageEnvironnemental": "parc-naturel-regional",
                                    "zonagePatrimonial": "monument-historique"}]), algo)
    assert (ev.indices == 0).all() and ev.poids_renseignes[0] == 2
    det = criteria_details(reference_frame([{"zonagePatrimonial": "spr"}]), algo)
    row = det[det["critere"] == "zonagePatrimonial"].iloc[0]
    assert row["etat"] == "valeur sans score" and bool(row["renseigne"])
    assert np.isnan(row["impact_culture"])


def test_neutral_ne_sait_pas_rows_of_the_matrix_are_never_read(algo):
    with_row = evaluate(reference_frame([{"surfaceSite": 38500,
                                          "raccordementEau": "ne-sait-pas"}]), algo)
    without = evaluate(reference_frame([{"surfaceSite": 38500}]), algo)
    assert (with_row.indices == without.indices).all()
    assert with_row.poids_renseignes[0] == without.poids_renseignes[0] == 2


def test_booleans_given_as_strings_are_read_as_the_reference_reads_them(algo):
    a = evaluate(reference_frame([{"siteEnCentreVille": True}]), algo)
    b = evaluate(reference_frame([{"siteEnCentreVille": "true"}]), algo)
    assert (a.indices == b.indices).all() and a.indices[0, 0] == 100


def test_rank_ties_keep_usage_order_on_the_rounded_index(algo):
    ev = evaluate(reference_frame([{"presenceEspecesProtegees": "non"}]), algo)
    assert (ev.indices == 50).all()
    assert (ev.rangs[0] == np.arange(1, 8)).all()


def test_columns_of_the_layers(algo):
    frame = reference_frame([v["input"]["criteria"]
                             for v in _vectors(DATA / "vecteurs-publics.json")[:2]])
    cols = evaluate(frame, algo).columns()
    assert list(cols.columns[:3]) == ["mutabilite_residentiel", "mutabilite_residentiel_rang",
                                      "mutabilite_residentiel_potentiel"]
    assert list(cols["mutabilite_meilleur_usage"]) == ["industrie", "residentiel"]
    assert list(cols["mutabilite_fiabilite"]) == [10.0, 10.0]
    assert list(cols["mutabilite_fiabilite_niveau"]) == ["Très fiable"] * 2
    assert list(cols["mutabilite_version"]) == ["v1.11"] * 2


def test_criteria_details_explain_the_index(algo):
    vectors = _vectors(DATA / "vecteurs-publics.json")
    frame = reference_frame([v["input"]["criteria"] for v in vectors])
    det = criteria_details(frame, algo)
    assert len(det) == 8 * 28
    ev = evaluate(frame, algo)
    # The index recomputed from the table's impacts and weights.
    for j, u in enumerate(algo.usages):
        s, w = det[f"impact_{u}"], det["poids"]
        plus = np.where(s == 0.5, 0.5 * w, np.where(s * w > 0, s * w, 0.0))
        minus = np.where(s == 0.5, 0.5 * w, np.where(s * w > 0, 0.0, -s * w))
        a = pd.Series(np.nan_to_num(plus)).groupby(det["ligne"]).sum().to_numpy()
        c = pd.Series(np.nan_to_num(minus)).groupby(det["ligne"]).sum().to_numpy()
        assert (a == ev.avantages[:, j]).all() and (c == ev.contraintes[:, j]).all()
    debug = vectors[4]["debug"]
    pub5 = det[det["ligne"] == 4].set_index("critere")
    assert pub5.loc["distanceTransportCommun", "etat"] == "recherche sans résultat"
    for u, scores in debug["scoresBruts"].items():
        for key, score in scores.items():
            assert pub5.loc[key, f"impact_{u}"] == score, (u, key)


def test_a_large_frame_of_mixed_types_in_one_call(algo):
    # Not a timing: the engine handles a large frame of mixed types in one call.
    rng = np.random.default_rng(0)
    n = 20_000
    frame = pd.DataFrame({
        "surfaceSite": rng.uniform(0, 100_000, n),
        "siteEnCentreVille": rng.choice(np.array([True, False, None], dtype=object), n),
        "zonageReglementaire": rng.choice(np.array(["zone-urbaine-u", "zone-agricole-a",
                                                    NE_SAIT_PAS, None], dtype=object), n),
    })
    ev = evaluate(frame, algo)
    one = evaluate(frame.iloc[[123]].reset_index(drop=True), algo)
    assert (ev.indices[123] == one.indices[0]).all()
    assert ev.indices.shape == (n, 7)


# --------------------------------------------------------------------------- version selection


def _territory(tmp_path: Path, options: str) -> Path:
    (tmp_path / "p.gpkg").write_bytes(b"")
    path = tmp_path / "t.toml"
    path.write_text(f"""
[territoire]
nom = "T"
communes = ["25267"]

[sources.parcelles]
chemin = "p.gpkg"

{options}
""", encoding="utf-8")
    return path


def test_default_version_is_shipped(tmp_path):
    t = load_territory(_territory(tmp_path, ""))
    assert t.options.mutabilite.version == "v1.11"
    t = load_territory(_territory(tmp_path, "[options.mutabilite]\nactif = false\n"))
    assert t.options.mutabilite is None


def test_territory_selects_other_tables(tmp_path, doc):
    other = json.loads(json.dumps(doc))
    other["version"] = "v9.9"
    other["weights"]["surfaceSite"] = 4
    (tmp_path / "v9.json").write_text(json.dumps(other), encoding="utf-8")
    t = load_territory(_territory(tmp_path, '[options.mutabilite]\nversion = "v9.9"\n'
                                            'tables = "v9.json"\n'))
    algo = t.options.mutabilite
    assert algo.version == "v9.9" and algo.poids_total == 32
    ev = evaluate(reference_frame([{"surfaceSite": 60000}]), algo)
    assert ev.poids_renseignes[0] == 4 and ev.fiabilite[0] == 1.5


@pytest.mark.parametrize(("options", "message"), [
    ('version = "v1.12"', r"options\.mutabilite\.version.*v1\.12.*versions livrées : v1\.11"),
    ('tables = "absent.json"', r"options\.mutabilite\.tables.*fichier introuvable"),
    ('tables = "bad.json"', r"options\.mutabilite\.tables.*JSON invalide"),
    ('tables = "partial.json"',
     r"options\.mutabilite\.tables.*criteria\.surfaceBati\.thresholds\[1\]\.scores\.culture"),
    ('tables = "v111.json"\nversion = "v2"', r"options\.mutabilite\.version.*'v2'.*'v1\.11'"),
    ('versoin = "v1.11"', r"clé inconnue « options\.mutabilite\.versoin »"),
    ('actif = "oui"', r"options\.mutabilite\.actif"),
])
def test_bad_tables_are_named(tmp_path, doc, options, message):
    (tmp_path / "bad.json").write_text("{ pas du json", encoding="utf-8")
    partial = json.loads(json.dumps(doc))
    del partial["criteria"]["surfaceBati"]["thresholds"][1]["scores"]["culture"]
    (tmp_path / "partial.json").write_text(json.dumps(partial), encoding="utf-8")
    (tmp_path / "v111.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_territory(_territory(tmp_path, f"[options.mutabilite]\n{options}\n"))
