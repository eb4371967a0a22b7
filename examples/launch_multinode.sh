#!/usr/bin/env bash
# Launches an example on several hosts, with Horovod's launcher or under SLURM.
#
#   HOSTS=node1:8,node2:8 bash examples/launch_multinode.sh examples/pytorch_synthetic_benchmark.py
#   sbatch -N 2 --ntasks-per-node=8 examples/launch_multinode.sh examples/diloco.py   # SLURM
#
# horovodrun needs passwordless ssh between the hosts and the same environment (Python, torch,
# Horovod, horovod_ext) on each; one rank per GPU, or per core group on CPU clusters. The
# scripts pin their GPU with torch.cuda.set_device(hvd.local_rank()).
# Gloo is the default; set CONTROLLER=mpi to launch through MPI (Horovod built with MPI).
set -euo pipefail
script=${1:?usage: launch_multinode.sh SCRIPT [ARGS...]}
shift
PYTHON=${PYTHON:-python}

if [ -n "${SLURM_JOB_ID:-}" ] && [ -z "${HOSTS:-}" ]; then
    # One task per rank, as srun starts them; Horovod reads rank and size from MPI/PMI.
    exec srun "$PYTHON" "$script" "$@"
fi

HOSTS=${HOSTS:-localhost:2}
np=0
for h in ${HOSTS//,/ }; do np=$((np + ${h##*:})); done
controller=--gloo
if [ "${CONTROLLER:-gloo}" = mpi ]; then controller=--mpi; fi
exec horovodrun $controller -np "$np" -H "$HOSTS" "$PYTHON" "$script" "$@"
