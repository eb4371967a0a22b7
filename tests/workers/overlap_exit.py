"""Runs on every rank: a script that ends right after an overlapped step() (no flush, as
Horovod's synthetic benchmark ends). Many small buckets, so some are still held back at the
end, and one rank ends while the other is still in its last backward; the job must still
exit 0 on every rank (without the exit hook the first rank leaves, and the other's last
allreduces fail)."""
import horovod.torch as hvd
import torch
import torch.nn as nn
import torch.nn.functional as F

import horovod_ext as hvd_ext

hvd.init()
torch.set_num_threads(1)
torch.manual_seed(0)
model = nn.Sequential(*[nn.Linear(64, 64) for _ in range(12)])
opt = hvd_ext.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.01),
                                   named_parameters=model.named_parameters(),
                                   mode=hvd_ext.Sync(overlap_forward=True), bucket_cap_mb=0.02)
for step in range(3):
    opt.zero_grad()
    loss = F.mse_loss(model(torch.randn(8, 64)), torch.zeros(8, 64))
    if step == 2 and hvd.rank() == 0:
        import time
        time.sleep(1.0)  # the other rank ends its last step() and reaches the end first
    loss.backward()
    opt.step()
