"""Bytes a rank sends for one collective, under the algorithms Gloo and MPI use for large
buffers: ring allreduce (reduce-scatter + allgather: 2 (n - 1) / n of the buffer per rank),
broadcast (n - 1 copies leave the root, spread over the ranks by a tree: (n - 1) / n of the
buffer per rank on average), allgather (each rank's piece reaches n - 1 others), alltoall (all but its own 1/n of the buffer). The optimizers
add these to ``optimizer.bytes_sent`` for every collective they launch."""


def wire_bytes(kind, nbytes, n):
    if n <= 1:
        return 0.0
    if kind == "allreduce":
        return 2.0 * (n - 1) / n * nbytes
    if kind == "broadcast":
        return (n - 1) / n * nbytes
    if kind == "allgather":
        return (n - 1) * nbytes
    if kind == "alltoall":
        return (n - 1) / n * nbytes
    raise ValueError(f"unknown collective {kind!r}")
