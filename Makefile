# Observatoire du foncier économique — `make` installe et construit l'exemple, `make test` teste.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
CONFIG ?= data/sample/territoire.toml
OUT ?= data/out/gennes
SIZES ?= 100000 1000000
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := all
.PHONY: all help install build test test-rapide lint bench clean distclean validate

help: ## liste les cibles
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

all: build ## installe l'environnement et construit l'observatoire de l'exemple
	@echo
	@echo "Observatoire construit :"
	@echo "  GeoPackage (QGIS, projet inclus) : $(OUT)/observatoire.gpkg"
	@echo "  Carte (navigateur)               : $(OUT)/carte.html"
	@echo "  Rapport                          : $(OUT)/rapport.html"
	@echo "  Meilleurs sites (CSV)            : $(OUT)/meilleurs_sites.csv"
	@test -d $(OUT)/cnig && echo "  Export CNIG Sites Économiques    : $(OUT)/cnig/sites_economiques.gpkg" || true
	@test -d $(OUT)/cnig && echo "  Export CNIG en CSV (data.gouv.fr) : $(OUT)/cnig/*.csv" || true
	@test -d $(OUT)/consultation && echo "  Consultation des ZAE (XLSX, CSV) : $(OUT)/consultation/" || true
	@test -d $(OUT)/atlas && echo "  Atlas des ZAE (HTML, PDF)        : $(OUT)/atlas/couverture.html" || true

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 ou plus est nécessaire ($(PYTHON))"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "Impossible de créer l'environnement virtuel : installez python3-venv (sudo apt-get install python3-venv)"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

install: $(STAMP) ## crée .venv et installe le projet et ses dépendances

# Rebuild only when the code, the territory file or one of its sources changed.
SOURCES := $(shell test -x $(PY) && $(PY) -m observatoire deps --config $(CONFIG) 2>/dev/null)
CODE := $(shell find observatoire -type f \( -name '*.py' -o -name '*.toml' -o -name '*.html' -o -name '*.js' -o -name '*.css' -o -name '*.json' -o -name '*.gpkg' -o -name '*.csv' -o -name '*.gz' \) 2>/dev/null)

$(OUT)/observatoire.gpkg: $(STAMP) $(CONFIG) $(SOURCES) $(CODE)
	$(BIN)/observatoire build --config $(CONFIG)

build: $(OUT)/observatoire.gpkg ## construit (ou reconstruit si besoin) l'observatoire de l'exemple

validate: $(STAMP) ## vérifie le fichier de territoire et ses sources sans construire
	$(BIN)/observatoire validate --config $(CONFIG)

test: $(STAMP) ## lance la suite de tests (hors ligne, quelques minutes)
	$(BIN)/pytest -q

test-rapide: $(STAMP) ## lance les tests sans les lents (constructions, navigateur, QGIS, banc)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP) ## vérifie le style (ruff) et les types (mypy)
	$(BIN)/ruff check observatoire tests scripts
	$(BIN)/mypy observatoire

bench: $(STAMP) ## mesure le temps et la mémoire sur des territoires synthétiques (SIZES=...)
	$(PY) scripts/bench.py --sizes $(SIZES)

clean: ## supprime les sorties (jamais les données d'entrée ni l'historique des observations)
	if [ -d data/out ]; then \
	  find data/out -mindepth 2 -maxdepth 2 ! -name historique -exec rm -rf {} + ; \
	  find data/out -mindepth 1 -maxdepth 1 -type f -delete ; fi
	rm -rf bench/work .pytest_cache .mypy_cache

distclean: clean ## supprime aussi l'environnement virtuel
	rm -rf $(VENV)
