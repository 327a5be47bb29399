# The competition image: Python 3.11 and the pinned dependencies the ingestion and scoring programs import.
# The programs and the cityscapes_competition package come inside the bundle's program zips, so this image only
# changes when requirements.lock does.
#
# Build and push (the platforms' workers are x86-64, and tensorflow-cpu ships x86-64 wheels only):
#   docker build --platform linux/amd64 -t ACCOUNT/cityscapes-competition:1.0 .
#   docker push ACCOUNT/cityscapes-competition:1.0
# then set docker_image in cityscapes_competition/challenge.yaml to ACCOUNT/cityscapes-competition:1.0 and
# run `make bundle`.
#
# Nothing else is set: no WORKDIR, USER, ENTRYPOINT or CMD, no environment. The workers choose the working
# directory, mount the run's folders and run the program's `command` (python3 ...) themselves.
FROM python:3.11-slim-bookworm

COPY requirements.lock /tmp/requirements.lock

# The lock is complete, hence --no-deps. Left out: what only the tests and linting use (tf_keras writes legacy
# test models, keras-hub with regex and tokenizers builds the models the starting kit's export_keras_hub.py is
# tested on, opencv-python-headless writes the PNGs participants' OpenCV code writes, pytest with iniconfig and
# pluggy, ruff). pywuffs (png_io's PNG decoder) is published as source only: build-essential compiles it and
# leaves in the same layer (pip fetches setuptools and pybind11 for the build; libstdc++, which the module
# links, stays: apt itself needs it). The import line fails the build if a runtime module is missing, and pip
# check if an installed package lacks a dependency.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && grep -vE '^(tf_keras|keras-hub|regex|tokenizers|opencv-python-headless|pytest|iniconfig|pluggy|ruff)==' \
       /tmp/requirements.lock > /tmp/requirements-image.txt \
    && pip install --no-cache-dir --no-deps -r /tmp/requirements-image.txt \
    && apt-get purge -y --auto-remove build-essential \
    && rm -rf /var/lib/apt/lists/* /tmp/requirements.lock /tmp/requirements-image.txt \
    && pip check \
    && python -c "import cityscapesscripts, deflate, h5py, ijson, keras, numpy, PIL, pycocotools, pywuffs, scipy, tensorflow, tzdata, yaml, zlib_ng" \
    && python -c "import ijson; assert ijson.backend == 'yajl2_c', ijson.backend"
