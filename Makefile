# Territoires de solutions — commandes du projet (GNU make 4.3).
# `make` seul affiche l'aide. Un nouveau venu n'a besoin que de `make demo` et `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.11 si présent, sinon python3 (sur Debian 12, python3 est la 3.11).
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := .venv
VPY := $(VENV)/bin/python
MANAGE := $(VPY) manage.py
# The venv is (re)installed only when the content of requirements.lock changes.
LOCK_HASH := $(firstword $(shell sha256sum requirements.lock 2>/dev/null | cut -c1-16))
STAMP := $(VENV)/.installed-$(LOCK_HASH)
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install demo test captures e2e-tools bench lint lock migrations-check messages clean distclean

help: ## Affiche cette aide
	@echo "Territoires de solutions — cibles disponibles :"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo ""
	@echo "Pour commencer : make demo   (puis ouvrir http://127.0.0.1:8000)"

install: $(STAMP) ## Crée .venv et installe les dépendances verrouillées (rien à faire si à jour)

$(STAMP):
	@if ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then \
		echo "Erreur : '$(PYTHON)' est introuvable ou n'a pas le module venv."; \
		echo "Sur Debian : sudo apt-get install python3.11 python3.11-venv  (ou make PYTHON=/chemin/python3.11)"; \
		exit 1; \
	fi
	@version=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	if [ "$$version" != "3.11" ]; then \
		echo "Attention : $(PYTHON) est Python $$version ; le projet est prévu pour Python 3.11."; \
	fi
	@echo "==> Installation de l'environnement $(VENV) ($(PYTHON))"
	@if [ ! -x $(VPY) ] || ! $(VPY) -m pip --version >/dev/null 2>&1; then \
		rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	fi
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(VPY) -m pip check
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "==> Environnement prêt."

demo: install ## Lance la démonstration sur http://127.0.0.1:8000 (SQLite sous var/, comptes affichés)
	$(MANAGE) migrate --noinput
	@# seed_demo ends with the table of demo accounts and their password.
	$(MANAGE) seed_demo
	@echo ""
	@echo "============================================================"
	@echo "  Territoires de solutions est disponible sur :"
	@echo "      http://127.0.0.1:8000"
	@echo "  Ouvrez cette adresse dans votre navigateur."
	@echo "  Ctrl+C pour arrêter le serveur."
	@echo "============================================================"
	@echo ""
	@echo "Les courriels de la démonstration sont écrits dans var/mails/ (un fichier par envoi)."
	EMAIL_MODE=file TIMERS_IN_PROCESS=1 $(VENV)/bin/daphne -b 127.0.0.1 -p 8000 config.asgi:application

test: install ## Lance toute la suite de tests, en parallèle (options : make test PYTEST_ARGS="-k enrol -x", ou "-n 0" en série)
	$(VPY) -m pytest -n auto --maxprocesses=4 $(PYTEST_ARGS)

captures: install ## Refait les captures d'écran du guide (docs/guide/captures/) par les tests de bout en bout
	GUIDE_CAPTURES=1 $(VPY) -m pytest -n 0 tests/e2e/test_guide_captures.py tests/e2e/test_three_users.py tests/e2e/test_routing_and_deadlines.py $(PYTEST_ARGS)

e2e-tools: ## Outils des tests de bout en bout : axe-core (npm ci) ; Chromium vient de Debian (apt-get install chromium)
	@command -v npm >/dev/null 2>&1 || { echo "npm est introuvable : les tests d'accessibilité seront ignorés localement."; exit 0; }; \
	npm ci --no-audit --no-fund --loglevel=error
	@test -x /usr/bin/chromium || echo "Chromium est absent (sudo apt-get install chromium) : les tests de bout en bout seront ignorés localement."

bench: install ## Tous les bancs d'essai (écriture, audit, course aux prises, prises simultanées par HTTP, notifications, tableau de bord, pages ; PostgreSQL et Redis locaux) ; résultats dans bench/results/ et docs/performance.md
	$(VPY) -m bench

# `ruff format --check` is not enforced yet: the code base is not consistently formatted.
lint: install ## Vérifie le code avec ruff
	$(VENV)/bin/ruff check .

lock: install ## Régénère requirements.lock depuis pyproject.toml (pip-compile, avec empreintes)
	@$(VENV)/bin/pip-compile --version >/dev/null 2>&1 || $(VPY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --no-emit-index-url --no-emit-find-links --allow-unsafe --extra=dev \
		--generate-hashes --strip-extras -o requirements.lock pyproject.toml

migrations-check: install ## Vérifie qu'aucune migration ne manque
	$(MANAGE) makemigrations --check --dry-run

messages: install ## Met à jour et compile les traductions françaises (nécessite gettext)
	@command -v msgfmt >/dev/null 2>&1 || { echo "Erreur : gettext est requis (sudo apt-get install gettext)."; exit 1; }
	$(MANAGE) makemessages -l fr --no-obsolete --ignore=.venv --ignore=var --ignore=tests --ignore=node_modules
	$(MANAGE) compilemessages --ignore=.venv --ignore=var

clean: ## Supprime var/ (base SQLite de démonstration, clé secrète locale, courriels) mais garde .venv
	@echo "Suppression de var/ (données de démonstration locales)."
	rm -rf var

distclean: clean ## Comme clean, et supprime aussi l'environnement .venv
	@echo "Suppression de $(VENV)."
	rm -rf $(VENV)
