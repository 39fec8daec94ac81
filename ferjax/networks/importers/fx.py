"""Cutting a PyTorch module's graph where the user says, with ``torch.fx``.

``split(module, layer)`` traces the module and cuts its graph after the last
operation *inside* the submodule ``layer``. Inside means: torch.fx records
for every node the stack of modules whose ``forward`` it ran in
(``node.meta["nn_module_stack"]``), so a block whose forward ends in a
functional operation (``F.relu(x + self.conv2(...))``, ConvNeXt's
``result += input``, a ViT block's ``x = x + attn(...)``) is cut after that
operation, not after its last submodule.

* **Layer names** are dotted (``layer4.2``) or pytorch-grad-cam's notation
  (``layer4[-1]``, ``blocks[-1].norm1``, ``0.features[-1]``):
  :func:`resolve_layer`.
* **The two sides** follow graph order: the features graph is every node up
  to the cut, the head every node after it. Values of the features side that
  the head also reads, besides the cut itself (a transformer's residual
  stream around its ``norm1``), are *carried*: the features graph returns
  ``(A, *carry)``, the head takes them (:class:`ferjax.networks.interface.Cut`).
  A head that reads the network's input itself is refused.
* **A final softmax** or log-softmax over the classes (``nn.Softmax``,
  ``nn.LogSoftmax``, ``F.softmax``, ``torch.log_softmax``,
  ``Tensor.softmax``, ...) is left out of the head: explanations are of the
  logits (:func:`final_softmax`).
* **Forward arguments with defaults** (timm's ``attn_mask=None``) are fixed to
  their defaults while tracing; otherwise they would become inputs.
"""

from __future__ import annotations

import inspect
import re


def resolve_layer(module, layer: str) -> str:
    """A submodule's dotted name from ``"layer4.2"``, ``"layer4[-1]"`` or ``"blocks[-1].norm1"``; KeyError."""
    names = {id(m): n for n, m in module.named_modules()}
    obj = module
    for part in re.findall(r"\[-?\d+\]|[^.\[\]]+", layer):
        try:
            if part.startswith("["):
                obj = obj[int(part[1:-1])]
            elif part.lstrip("-").isdigit() and not hasattr(obj, part):
                obj = obj[int(part)]
            else:
                obj = getattr(obj, part)
        except (AttributeError, IndexError, KeyError, TypeError):
            raise KeyError(f"no submodule {layer!r} (stopped at {part!r})") from None
    if id(obj) not in names or not names[id(obj)]:
        raise KeyError(f"{layer!r} is not a submodule")
    return names[id(obj)]


def trace(module):
    """The module's ``torch.fx.GraphModule``, forward arguments after the first fixed to their defaults."""
    import torch.fx

    params = list(inspect.signature(module.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    tracer = torch.fx.Tracer()
    graph = tracer.trace(module, concrete_args=concrete or None)
    return torch.fx.GraphModule(tracer.root, graph)


_SOFTMAX_METHODS = ("softmax", "log_softmax")


def final_softmax(node, modules):
    """``(kind, dim)`` if the graph node ``node`` is a softmax or log-softmax, else None."""
    import torch
    import torch.nn.functional as F

    functions = {F.softmax: "softmax", F.log_softmax: "log_softmax", torch.softmax: "softmax",
                 torch.log_softmax: "log_softmax", torch.special.softmax: "softmax",
                 torch.special.log_softmax: "log_softmax"}
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, (torch.nn.Softmax, torch.nn.LogSoftmax)):
            return ("softmax" if isinstance(m, torch.nn.Softmax) else "log_softmax"), m.dim
        return None
    if node.op == "call_function" and node.target in functions:
        kind = functions[node.target]
    elif node.op == "call_method" and node.target in _SOFTMAX_METHODS:
        kind = node.target
    else:
        return None
    return kind, node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)


def _inside(node, layer: str) -> bool:
    stack = node.meta.get("nn_module_stack") or {}
    return any(q == layer or q.startswith(layer + ".") for q, _ in stack.values())


def split(module, layer: str):
    """``(features, head, carried, dropped)``: the two GraphModules (``features(x) -> (A, *carry)``,
    ``head(A, *carry) -> logits``), how many values are carried, and the final softmax left out (or None).

    Raises KeyError for a layer that is not there, ValueError for a cut the
    head cannot be computed from.
    """
    import torch.fx

    gm = trace(module)
    out = next(n for n in gm.graph.nodes if n.op == "output")
    dropped, last = None, out.args[0]
    found = final_softmax(last, dict(gm.named_modules())) if isinstance(last, torch.fx.Node) else None
    if found is not None and found[1] in (1, -1):   # over the classes of (N, C)
        out.args = (last.args[0],)
        gm.graph.eliminate_dead_code()
        dropped = f"{found[0]}(dim={found[1]})"
    nodes = list(gm.graph.nodes)
    order = {n: i for i, n in enumerate(nodes)}
    inside = [n for n in nodes if _inside(n, layer)]
    if not inside:
        raise KeyError(f"no operation of {layer!r} in the traced graph")
    cut = inside[-1]
    before = [n for n in nodes if order[n] <= order[cut]]
    after = [n for n in nodes if order[n] > order[cut] and n.op != "output"]
    crossing = [n for n in before if any(order[u] > order[cut] for u in n.users)]
    if cut not in crossing:
        raise ValueError("the rest of the network does not use this layer's output")
    if any(n.op == "placeholder" for n in crossing):
        raise ValueError("the rest of the network reads its input itself, not only what this layer and the "
                         "layers before it computed")
    carry = [n for n in crossing if n is not cut]
    features = torch.fx.Graph()
    env = {}
    for n in before:
        env[n] = features.node_copy(n, lambda a: env[a])
    features.output((env[cut], *[env[c] for c in carry]))
    head = torch.fx.Graph()
    henv = {cut: head.placeholder("maps")}
    henv.update({c: head.placeholder(f"carry_{i}") for i, c in enumerate(carry)})
    for n in after:
        henv[n] = head.node_copy(n, lambda a: henv[a])
    head.output(torch.fx.map_arg(out.args[0], lambda a: henv[a]))
    parts = []
    for graph in (features, head):
        part = torch.fx.GraphModule(gm, graph)
        part.graph.eliminate_dead_code()
        part.recompile()
        parts.append(part.eval())
    return parts[0], parts[1], len(carry), dropped


def patch_grid(module, hw):
    """(h, w) of a vision transformer's patch grid: its first Conv2d whose stride equals its kernel (> 1), the
    patch embedding; None if it has none."""
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d) and tuple(m.stride) == tuple(m.kernel_size) and m.stride[0] > 1:
            return hw[0] // m.stride[0], hw[1] // m.stride[1]
    return None
