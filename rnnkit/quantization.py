"""int8 CPU inference: dynamic quantization of a trained model, and int8 checkpoints.

:func:`quantize_model` turns a model's linear layers (output projection, attention, bridges,
readouts, tagger heads) into torch's dynamic int8 linears and each fused LSTM/GRU
:class:`~rnnkit.modules.recurrent.RecurrentStack` into an :class:`Int8RecurrentStack` running
torch's dynamic int8 LSTM/GRU kernels (``torch.quantized_lstm``/``quantized_gru``, fbgemm through
the ``x86`` engine): weights in int8 with one scale per output row, activations quantized on the
fly, gate math in fp32. The call interface does not change (``forward``, ``init_state``, the
seq2seq ``encode``/``step``), so inference code runs unchanged. Stacks on the reference path
(layer norm, Jordan, plugin cells) and Elman stacks stay fp32, named in one warning.

:func:`quantize_checkpoint` writes those weights as plain int8 tensors plus per-row float scales
(symmetric: zero points are 0) under ``"quantized_state"``, with ``"quantization": "int8"``;
:func:`expand_checkpoint` turns them back into an fp32 ``model_state``. The scale of a row is a
function of its largest magnitude that dequantized weights reproduce exactly
(:func:`row_scales`), so expanding then re-quantizing gives back the stored int8 values and a
quantized checkpoint decodes bit for bit as ``rnnkit.load(path, quantize="int8")`` does.
Import this module only when int8 is asked for.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.errors import RnnkitError
from rnnkit.modules.cells import direction_suffixes
from rnnkit.modules.fused import Packing
from rnnkit.modules.recurrent import RecurrentStack, RecurrentState
from rnnkit.reporting import get_reporter

__all__ = [
    "Int8RecurrentStack",
    "expand_checkpoint",
    "int8_engine",
    "quantize_checkpoint",
    "quantize_model",
    "quantized_parameters",
    "row_scales",
]

QMAX = 127  # symmetric int8: rows use -127..127, so a row's extreme maps to exactly ±127
_ENGINES = ("x86", "fbgemm")
_TINY = 1e-12  # the scale of an all-zero row
_DROPPED_KEYS = ("train_config", "optimizer", "schedule", "progress", "rng", "data_rng")


@functools.cache
def int8_engine() -> str | None:
    """The quantized engine set for int8 inference (``x86``, else ``fbgemm``), or ``None`` when
    this torch build or CPU has neither (fbgemm needs AVX2): checked by packing one weight."""
    for engine in _ENGINES:
        if engine not in torch.backends.quantized.supported_engines:
            continue
        previous = torch.backends.quantized.engine
        try:
            torch.backends.quantized.engine = engine
            with _quiet():
                w = torch.quantize_per_tensor(torch.ones(1, 1), 1.0, 0, torch.qint8)
            torch.ops.quantized.linear_dynamic(
                torch.ones(1, 1), torch.ops.quantized.linear_prepack(w, None), True
            )
        except RuntimeError:
            torch.backends.quantized.engine = previous
            continue
        return engine
    return None


def row_scales(weight: Tensor) -> Tensor:
    """One scale per output row of ``weight`` (O, I): its largest magnitude / 127, (O,) fp32.

    Each scale s is a fixed point of ``(127 * s) / 127`` in fp32, so the dequantized row (whose
    extreme is exactly ``127 * s``) yields s again: re-quantizing is exact.
    """
    scale = (weight.detach().float().abs().amax(dim=1) / QMAX).clamp(min=_TINY)
    for _ in range(8):  # in practice already a fixed point; otherwise step to a neighbour
        bad = (scale * QMAX) / QMAX != scale
        if not bad.any():
            return scale
        scale = torch.where(bad, torch.nextafter(scale, torch.full_like(scale, 1.0)), scale)
    raise RuntimeError("no fixed-point int8 scale found")  # never seen; kept as a guard


def _qtensor(weight: Tensor) -> Tensor:
    """``weight`` (O, I) as a per-row symmetric qint8 tensor (the scheme of this module)."""
    scale = row_scales(weight).double()
    zeros = torch.zeros(scale.numel(), dtype=torch.long)
    with _quiet():
        return torch.quantize_per_channel(weight.detach().float(), scale, zeros, 0, torch.qint8)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch 2.13's deprecation notice on creating quantized tensors (the dynamic
    int8 kernels they feed are what this module uses; the notice is not the user's concern)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*quantized tensor creation", category=UserWarning
        )
        yield


def _int8_linear(linear: nn.Linear) -> nn.Module:
    """A dynamic int8 copy of ``linear`` (same call: (…, I) → (…, O) in fp32)."""
    q = torch.ao.nn.quantized.dynamic.Linear(
        linear.in_features, linear.out_features, bias_=linear.bias is not None, dtype=torch.qint8
    )
    bias = None if linear.bias is None else linear.bias.detach().float()
    q.set_weight_bias(_qtensor(linear.weight), bias)
    return q


class Int8RecurrentStack(nn.Module):
    """A fused LSTM/GRU :class:`RecurrentStack` at inference, on torch's dynamic int8 kernels.

    Same call as the stack: ``forward(x (B, T, I), state, lengths)`` → (B, T, dirs*H) and a
    :class:`RecurrentState`; ``init_state``. Layers run in one kernel call when nothing sits
    between them, else one call per layer with the stack's residual connections (dropout is
    off at inference). It holds no parameters: the packed weights live in ``self.cells``.
    """

    def __init__(self, stack: RecurrentStack) -> None:
        super().__init__()
        self.mode = stack.spec.fused_mode
        if self.mode not in ("LSTM", "GRU"):
            raise ValueError(f"no int8 kernel for {self.mode}")
        for name in ("cell_name", "spec", "hidden_size", "num_layers", "bidirectional", "dirs"):
            setattr(self, name, getattr(stack, name))
        self.output_size, self.residual = stack.output_size, stack.residual
        self.residual_dropped = stack.residual_dropped
        self.cells = [self._pack(stack.rnn, k) for k in range(stack.num_layers)]
        self.per_layer = not stack.single_call

    def _pack(self, rnn: nn.Module, k: int) -> list[Any]:
        """Layer ``k``'s packed int8 cell parameters, one per direction (torch's order)."""
        cells = []
        for sfx in direction_suffixes(self.bidirectional):
            w_ih, w_hh, b_ih, b_hh = (
                getattr(rnn, f"{name}_l{k}{sfx}").detach().float()
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            packed_ih = torch.ops.quantized.linear_prepack(_qtensor(w_ih), b_ih)
            packed_hh = torch.ops.quantized.linear_prepack(_qtensor(w_hh), b_hh)
            cells.append(
                torch.ops.quantized.make_quantized_cell_params_dynamic(
                    packed_ih, packed_hh, b_ih, b_hh, True
                )
            )
        return cells

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> RecurrentState:
        """Zeros, (L*dirs, B, H), fp32 on the CPU (``device``/``dtype`` as the fp32 stack's)."""
        shape = (self.num_layers * self.dirs, batch_size, self.hidden_size)
        zeros = lambda: torch.zeros(shape, device=device, dtype=dtype or torch.float32)  # noqa: E731
        return RecurrentState(zeros(), zeros() if self.mode == "LSTM" else None)

    def forward(
        self, x: Tensor, state: RecurrentState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, RecurrentState]:
        """``x`` (B, T, I) → output (B, T, dirs*H) and the state after the last step, as
        :meth:`RecurrentStack.forward` (``lengths``: right-padded rows as packed sequences)."""
        x = x.float()
        if state is None:
            state = self.init_state(x.size(0), x.device)
        packing = None if lengths is None else Packing(lengths.cpu(), x.size(1))
        if not self.per_layer:
            params = [cell for layer in self.cells for cell in layer]
            out, h, c = self._run(params, self.num_layers, x, state.h, state.c, packing)
            return out, RecurrentState(h, c)
        hs, cs = [], []
        for k, layer in enumerate(self.cells):
            sl = slice(k * self.dirs, (k + 1) * self.dirs)
            c0 = None if state.c is None else state.c[sl]
            y, h, c = self._run(layer, 1, x, state.h[sl], c0, packing)
            x = y + x if self.residual and y.shape == x.shape else y  # dropout is off: inp == x
            hs.append(h)
            cs.append(c)
        return x, RecurrentState(torch.cat(hs), torch.cat(cs) if self.mode == "LSTM" else None)

    def _run(
        self, params: list[Any], layers: int, x: Tensor, h0: Tensor, c0: Tensor | None,
        packing: Packing | None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:  # fmt: skip
        """torch's int8 kernel over ``layers`` layers; h0, c0 (layers*dirs, B, H)."""
        lstm = self.mode == "LSTM"
        if packing is None:
            opts = (True, layers, 0.0, False, self.bidirectional, True)
            if lstm:
                out, h, c = torch.quantized_lstm(
                    x, [h0, c0], params, *opts, dtype=torch.qint8, use_dynamic=True
                )
                return out, h, c
            out, h = torch.quantized_gru(x, h0, params, *opts)
            return out, h, None
        packed = packing.pack(x)
        sort = lambda t: t.index_select(1, packed.sorted_indices)  # noqa: E731
        unsort = lambda t: t.index_select(1, packed.unsorted_indices)  # noqa: E731
        opts = (True, layers, 0.0, False, self.bidirectional)
        if lstm:
            hx = [sort(h0), sort(c0)]  # type: ignore[arg-type]
            res = torch.quantized_lstm(
                packed.data, packed.batch_sizes, hx, params, *opts,
                dtype=torch.qint8, use_dynamic=True,
            )  # fmt: skip
        else:
            res = torch.quantized_gru(packed.data, packed.batch_sizes, sort(h0), params, *opts)
        seq = nn.utils.rnn.PackedSequence(
            res[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        )
        c = unsort(res[2]) if lstm else None
        return packing.unpack(seq), unsort(res[1]), c


def _stacks(model: nn.Module) -> list[tuple[str, RecurrentStack]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, RecurrentStack)]


def _int8_stack(stack: RecurrentStack) -> bool:
    """Whether ``stack`` has an int8 kernel: fused, and an LSTM or a GRU."""
    return not stack.reference and stack.spec.fused_mode in ("LSTM", "GRU")


def quantized_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The weights :func:`quantize_model` stores in int8: every ``nn.Linear``'s weight and the
    W_ih, W_hh of fused LSTM/GRU stacks (biases, embeddings and the rest stay fp32)."""
    params = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    for _, stack in _stacks(model):
        if _int8_stack(stack):
            params += [p for n, p in stack.rnn.named_parameters() if n.startswith("weight_")]
    return params


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def quantize_model(model: nn.Module) -> nn.Module:
    """``model`` (on the CPU) with dynamic int8 linear layers and LSTM/GRU stacks, in eval mode,
    changed in place and returned. Stacks without an int8 kernel stay fp32 (one warning naming
    them); where the CPU or torch build has no int8 engine, the whole model stays fp32."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise RnnkitError("--quantize int8 runs on the CPU only; add --device cpu")
    model.eval()
    engine = int8_engine()
    if engine is None:
        get_reporter().warning(
            "--quantize int8: this CPU or torch build has no x86/fbgemm int8 engine "
            "(fbgemm needs AVX2); running in fp32"
        )
        return model
    torch.backends.quantized.engine = engine
    fp32 = []
    for name, stack in _stacks(model):
        if _int8_stack(stack):
            _replace(model, name, Int8RecurrentStack(stack))
        else:
            why = "reference cells" if stack.reference else "no int8 kernel"
            fp32.append(f"{name} ({stack.cell_name}, {why})")
    if fp32:
        get_reporter().warning(
            f"--quantize int8: these recurrent layers stay fp32: {', '.join(fp32)}"
        )
    linears = [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear]
    for name, linear in linears:
        _replace(model, name, _int8_linear(linear))
    return model


def quantize_checkpoint(state: Mapping[str, Any], model: nn.Module | None = None) -> dict[str, Any]:
    """``state`` (a checkpoint, as loaded) with its quantizable weights in int8; ``model``: the
    checkpoint's model, weights loaded (default: rebuilt from ``state``).

    ``"quantized_state"`` maps each such state-dict key to ``{"int8": (O, I) int8, "scale": (O,)
    fp32}`` (zero points are 0); ``"model_state"`` keeps the other tensors in fp32; a weight
    shared with another key (tied embeddings) stays fp32 there. Training state is dropped.
    """
    if model is None:
        from rnnkit.tasks import task_from_checkpoint  # the tasks import the models: lazily

        model = task_from_checkpoint(state).model_from_checkpoint(state)
    tensors = model.state_dict(keep_vars=True)
    owners: dict[int, int] = {}
    for t in tensors.values():
        owners[id(t)] = owners.get(id(t), 0) + 1
    chosen = {id(p) for p in quantized_parameters(model)}
    model_state, quantized = {}, {}
    for key, t in tensors.items():
        if id(t) in chosen and owners[id(t)] == 1 and t.dim() == 2:
            q = _qtensor(t)
            scale = q.q_per_channel_scales().float()
            quantized[key] = {"int8": q.int_repr().clone(), "scale": scale}
        else:
            model_state[key] = t.detach().clone()
    out = {k: v for k, v in state.items() if k not in _DROPPED_KEYS}
    out.update(model_state=model_state, quantized_state=quantized, quantization="int8")
    return out


def expand_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with an fp32 ``model_state`` the model builders load: an int8 checkpoint's
    weights dequantized (``"quantization"`` kept); any other checkpoint unchanged."""
    if state.get("quantization") != "int8" or "quantized_state" not in state:
        return state
    weights = dict(state["model_state"])
    for key, entry in state["quantized_state"].items():
        if not isinstance(entry, Mapping) or not {"int8", "scale"} <= entry.keys():
            raise RnnkitError(f"damaged int8 checkpoint: entry {key!r} has no int8 and scale")
        weights[key] = entry["int8"].float() * entry["scale"].float().unsqueeze(1)
    expanded = {k: v for k, v in state.items() if k != "quantized_state"}
    expanded["model_state"] = weights
    return expanded
