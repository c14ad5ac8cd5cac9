"""Training and prediction steps of one fixed batch shape, replayed as CUDA graphs on a GPU.

On a GPU a training step of the slow-fast Mamba (forward, loss, backward,
Adam) is thousands of small kernel launches, and the launches, not the
arithmetic, set its time. Captured once as a CUDA graph, every later step
is one replay. A graph runs on fixed tensors, so:

- every full batch is copied into static input buffers (B x 36 x k windows,
  B x k targets) and the step replays on them;
- the last, smaller batch of an epoch (N mod B windows) runs eagerly on the
  same model and optimizer. Padding it to B with zero-weight samples would
  change the method: the model's BatchNorm normalises with the statistics
  of the whole batch in training;
- Adam is torch's capturable multi-tensor Adam reading its learning rate
  and beta1 from device tensors, which the one-cycle schedule (lr and
  momentum, stepped on the host as in eager training) fills before each
  replay. Fused Adam takes beta1 as a host number fixed at capture, which
  would freeze the schedule's momentum cycle;
- the first ``WARMUP_STEPS`` full batches train eagerly on a side stream
  (their results count: they are real steps), then the next one is
  captured and replayed;
- prediction pads the last batch with zero windows and drops their
  outputs: in evaluation mode every window's output depends on that window
  only.

Modes: ``eager`` is the plain loop (the CPU path); ``static`` runs full
batches through the static buffers without a graph (any device: it is
what the graph replays, checked against the plain loop on the CPU);
``graph`` adds the capture (CUDA only). When capture fails, one warning
and the step continues eagerly.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable

import torch

__all__ = ["TrainStep", "Predictor", "step_mode", "make_optimizer", "WARMUP_STEPS"]

log = logging.getLogger(__name__)

WARMUP_STEPS = 3   # eager steps on a side stream before capture (torch's recipe for whole-step graphs)
MODES = ("eager", "static", "graph")
GRAPH_MIN_TORCH = (2, 5)   # Adam with its betas as tensors (the schedule's momentum in a graph)


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def step_mode(device: torch.device, cuda_graph: bool) -> str:
    """``graph`` on a CUDA device when enabled, else ``eager`` (the CPU path is the plain loop)."""
    if not (cuda_graph and device.type == "cuda"):
        return "eager"
    if _torch_version() < GRAPH_MIN_TORCH:
        log.warning("torch %s: CUDA graphs of the training step need torch >= %d.%d; "
                    "training eagerly", torch.__version__, *GRAPH_MIN_TORCH)
        return "eager"
    return "graph"


def make_optimizer(model: torch.nn.Module, lr: float, capturable: bool = False) -> torch.optim.Adam:
    """Adam over the model's parameters (docs/method.md §5).

    Default: torch's fused kernel on CPU and CUDA, one call per step instead
    of ~10 small ops per parameter tensor (the CPU model has 180; its step was
    8 ms of a 100 ms training step per batch, now ~1.5 ms). ``capturable``:
    the multi-tensor Adam with its lr and betas on the device, for a CUDA
    graph (see the module docstring). Same update rule either way.
    """
    device = next(model.parameters()).device
    if capturable:
        return torch.optim.Adam(model.parameters(), lr=torch.tensor(lr, device=device),
                                betas=(torch.tensor(0.9, device=device),
                                       torch.tensor(0.999, device=device)),
                                foreach=True, capturable=True)
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))


class TrainStep:
    """One optimisation step plus one schedule step per call.

    ``loss_fn(spot, logits, spot_target, cls_target) -> (loss, mse, ce)``.
    Calling it with a batch returns ``(loss, mse, ce)`` of that batch as one
    detached device tensor of 3 values (no host sync).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                 loss_fn: Callable, batch_size: int, mode: str = "eager"):
        if mode not in MODES:
            raise ValueError(f"step mode {mode!r}: expected one of {', '.join(MODES)}")
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn, self.batch_size, self.mode = loss_fn, batch_size, mode
        self.device = next(model.parameters()).device
        if mode == "graph" and self.device.type != "cuda":
            raise ValueError(f"step mode 'graph' needs a CUDA device, the model is on {self.device}")
        self._static: tuple[torch.Tensor, ...] | None = None   # x, spot target, class target
        self._out: torch.Tensor | None = None                    # the graph's (loss, mse, ce)
        self._graph = None
        self._full_steps = 0
        # the schedule sets beta1 as a host number; an optimizer with its lr on the device
        # (capturable) reads beta1 from a device tensor per group, filled after every schedule step
        self._beta1 = [torch.tensor(float(g["betas"][0]), device=g["lr"].device)
                       if isinstance(g["lr"], torch.Tensor) else None
                       for g in optimizer.param_groups]
        self._keep_betas_on_device()

    # -------------------------------------------------------------- the step
    def __call__(self, x: torch.Tensor, spot_target: torch.Tensor,
                 cls_target: torch.Tensor) -> torch.Tensor:
        if self.mode == "eager" or len(x) != self.batch_size:
            out = self._eager(x.to(self.device), spot_target.to(self.device),
                              cls_target.to(self.device))
        else:
            out = self._full(x, spot_target, cls_target)
        self.scheduler.step()
        self._keep_betas_on_device()
        return out

    def _compute(self, x, spot_target, cls_target) -> torch.Tensor:
        """Forward, loss, backward, Adam: what the graph captures (gradients set to None before)."""
        spot, logits = self.model(x)
        loss, mse, ce = self.loss_fn(spot, logits, spot_target, cls_target)
        loss.backward()
        self.optimizer.step()
        return torch.stack([loss, mse, ce]).detach()

    def _eager(self, x, spot_target, cls_target) -> torch.Tensor:
        spot, logits = self.model(x)
        loss, mse, ce = self.loss_fn(spot, logits, spot_target, cls_target)
        # once a graph holds the gradient tensors, zero them in place (0 + g = g) rather
        # than drop them: the graph's backward and Adam keep using that memory
        self.optimizer.zero_grad(set_to_none=self._graph is None)
        loss.backward()
        self.optimizer.step()
        return torch.stack([loss, mse, ce]).detach()

    def _full(self, x, spot_target, cls_target) -> torch.Tensor:
        if self._static is None:
            self._static = (torch.empty(x.shape, dtype=x.dtype, device=self.device),
                            torch.empty(spot_target.shape, dtype=spot_target.dtype,
                                        device=self.device),
                            torch.empty(cls_target.shape, dtype=cls_target.dtype,
                                        device=self.device))
        for buf, value in zip(self._static, (x, spot_target, cls_target)):
            buf.copy_(value)
        self._full_steps += 1
        if self.mode == "static":
            return self._eager(*self._static)
        if self._graph is not None:
            self._graph.replay()
            return self._out.clone()
        if self._full_steps <= WARMUP_STEPS:
            with _side_stream(self.device):
                return self._eager(*self._static)
        if self._capture():
            self._graph.replay()      # capture records the step; the replay runs it
            return self._out.clone()
        return self._eager(*self._static)

    def _capture(self) -> bool:
        """Record the step on the static buffers as a CUDA graph; False (one warning) if it fails."""
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)   # backward allocates the graph's gradients
        try:
            with torch.cuda.graph(graph):
                self._out = self._compute(*self._static)
        except Exception as err:   # any op that cannot be captured: train eagerly instead
            log.warning("CUDA graph capture of the training step failed (%s: %s); training "
                        "this fold eagerly (compute.train_cuda_graph: false skips capture)",
                        type(err).__name__, err)
            self.mode, self._out = "eager", None
            self.optimizer.zero_grad(set_to_none=True)
            return False
        self._graph = graph
        log.info("training step captured as a CUDA graph (batch %d)", self.batch_size)
        return True

    def _keep_betas_on_device(self) -> None:
        """After the schedule set beta1 as a number: write it into the group's device tensor."""
        for group, beta1 in zip(self.optimizer.param_groups, self._beta1):
            value = group["betas"][0]
            if beta1 is not None and value is not beta1:
                beta1.fill_(value)
                group["betas"] = (beta1, *group["betas"][1:])

    def release(self) -> None:
        """Free the graph and its memory pool (call when the fold's training is done)."""
        self._graph, self._out, self._static = None, None, None


class Predictor:
    """Model outputs for windows in batches of one size: (W, 36, k) -> (spot W x k, logits W x k x C).

    ``eager``: batches as they come (the last one smaller); ``static``: the
    last batch padded with zero windows to the fixed size, outputs of the
    padding dropped; ``graph``: static, the forward replayed as a CUDA graph.
    """

    def __init__(self, model: torch.nn.Module, batch_size: int, mode: str = "eager"):
        if mode not in MODES:
            raise ValueError(f"prediction mode {mode!r}: expected one of {', '.join(MODES)}")
        self.model, self.batch_size, self.mode = model, batch_size, mode
        self.device = next(model.parameters()).device
        self._x: torch.Tensor | None = None
        self._outs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._graph = None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch (at most batch_size windows, on the host or the device)."""
        self.model.eval()
        n = len(x)
        if self.mode == "eager":
            return self.model(x.to(self.device))
        if self._x is None:
            self._x = torch.zeros((self.batch_size, *x.shape[1:]), dtype=x.dtype,
                                  device=self.device)                      # batch x 36 x k
        self._x[:n].copy_(x)
        self._x[n:].zero_()
        if self.mode == "graph" and self._graph is None:
            self._capture()
        if self._graph is not None:
            self._graph.replay()
            spot, logits = self._outs
        else:
            spot, logits = self.model(self._x)
        return spot[:n].clone(), logits[:n].clone()

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            with _side_stream(self.device):
                self.model(self._x)                   # warm-up: lazy initialisation off the graph
            with torch.cuda.graph(graph):
                self._outs = self.model(self._x)
        except Exception as err:
            log.warning("CUDA graph capture of prediction failed (%s: %s); predicting eagerly",
                        type(err).__name__, err)
            self.mode, self._outs = "static", None
            return
        self._graph = graph


@contextlib.contextmanager
def _side_stream(device: torch.device):
    """Run the block on a fresh CUDA stream (torch's warm-up recipe before capture)."""
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        yield
    torch.cuda.current_stream(device).wait_stream(stream)
