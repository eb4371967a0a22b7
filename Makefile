# make bench: install if needed, then the throughput benchmark (2 ranks: Horovod, tuned Horovod, DDP vs hvd_ext).
# make test:  install if needed, then the whole test suite (C++ tests, nvcc check, mypy, the docs
#             site's strict build, pytest).
# make time-to-loss: time to a target loss of every method at 10 Gbit/s, 1 Gbit/s, 100 Mbit/s,
#             25 Mbit/s, 100 Mbit/s with 20 ms one way and 1 Gbit/s with 5 ms, with end-to-end
#             checks of the fastest of ours and the fastest peer (benchmarks/time_to_loss.py; the
#             training grid once, then the step times at each link; not part of the tests).
# make cuda-check: the CUDA build in .venv-cuda/ and the test suite against it (no GPU needed).
VENV ?= .venv
PY := $(VENV)/bin/python
NP ?= 2
BENCH_ARGS ?= --model cnn --steps 5 --rounds 8 --modes horovod,horovod-tuned,ddp,sync,delayed
STAMP := $(VENV)/.horovod_ext-installed

TTL := docs/results/time_to_loss
# every peer and ours, the local-update methods of every library at the same periods (8 to 128)
TTL_METHODS := horovod,horovod-tuned,horovod-fp16,ddp,ddp-fp16,ddp-powersgd,ddp-postlocalsgd-H8,$\
ddp-postlocalsgd-H16,ddp-postlocalsgd-H32,ddp-postlocalsgd-H128,torchft-localsgd-H8,$\
torchft-localsgd-H32,torchft-localsgd-H128,torchft-diloco-H8,torchft-diloco-H32,$\
torchft-diloco-H128,torchft-streaming-H8,torchft-streaming-H32,torchft-streaming-H32-t8,$\
torchft-streaming-H128-t32,sync,sync-fp16,int8,powersgd,delayed,delayed-fp16,diloco-H8,$\
diloco-H32,localsgd-H8,localsgd-H32,localsgd-H128,diloco-H8-o1.0-m0.5-f2-t1-a0.5,$\
diloco-H32-o1.0-m0.5-f2-t1-a0.5,diloco-H32-o1.0-m0.5-f2-t1-a0.5+int4,$\
diloco-H32-o1.0-m0.5-f2-t1-a0.5+topk-d0.05-b4,diloco-H16-o1.0-m0.5-f2-t4-a0.5+int4,$\
diloco-H32-o1.0-m0.5-f2-t8-a0.5,diloco-H32-o1.0-m0.5-f2-t8-a0.5+int4,$\
diloco-H32-o1.0-m0.0-f2-t8-a0.5+int4,diloco-H128-o1.0-m0.5-f2-t32-a0.5,$\
diloco-H128-o1.0-m0.5-f2-t32-a0.5+int4,diloco-H128-o1.0-m0.5-f2-t32-a0.5+topk-d0.05-b4
TTL_RUN := $(PY) -m benchmarks.time_to_loss --np $(NP) --methods $(TTL_METHODS) --check winners \
	--train-json $(TTL)/train.json

.PHONY: install test bench clean cuda-check time-to-loss

install: $(STAMP)

$(STAMP): setup.py pyproject.toml scripts/install_horovod.sh $(wildcard csrc/*.h csrc/*.cpp csrc/cpu/* csrc/torch/* csrc/cuda/*)
	test -x $(PY) || python3 -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install numpy pybind11 ninja pytest hypothesis tqdm matplotlib mlxtend \
		mypy mkdocs mkdocs-material "mkdocstrings[python]" torchft==0.2.0 build
	PYTHON=$(PY) bash scripts/install_horovod.sh
	$(PY) -m pip install --no-build-isolation --no-deps -e .
	touch $(STAMP)

test: install
	cmake -S . -B build/csrc
	cmake --build build/csrc -j2
	cd build/csrc && ctest --output-on-failure
	$(VENV)/bin/mypy
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	cd tests && ../$(PY) -m pytest -v -rs .

bench: install
	OMP_NUM_THREADS=1 $(VENV)/bin/horovodrun --gloo -np $(NP) $(PY) -m benchmarks.throughput \
		$(BENCH_ARGS) --json results/throughput.json

time-to-loss: install
	$(TTL_RUN) --rate 10gbit --json $(TTL)/10gbit.json
	$(TTL_RUN) --rate 1gbit --json $(TTL)/1gbit.json
	$(TTL_RUN) --rate 100mbit --json $(TTL)/100mbit.json
	$(TTL_RUN) --rate 25mbit --json $(TTL)/25mbit.json
	$(TTL_RUN) --rate 100mbit --delay-ms 20 --json $(TTL)/100mbit_20ms.json
	$(TTL_RUN) --rate 1gbit --delay-ms 5 --json $(TTL)/1gbit_5ms.json

# The CUDA build (torch from the package index with CUDA, Horovod with NCCL, the CUDA kernels) in
# .venv-cuda/, and the test suite against it; needs a CUDA toolkit, not a GPU.
cuda-check:
	bash scripts/cuda_check.sh

clean:
	rm -rf build $(VENV) *.egg-info horovod_ext/*.so
