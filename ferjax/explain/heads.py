"""Is a head what CAM needs, global average pooling and then an affine map? And its weights.

CAM (:func:`ferjax.explain.activation.cam`) reads the class weights off the
head, ``W[:, c] = d y_c / d pooled`` at ``pooled = 0``, which is the
classifier only if ``y = W^T mean_hw(A) + b``. Two checks say so on random
probes, inside the compiled program (an eager check costs more than the maps
on a GPU):

* the head sees only the spatial mean of its maps:
  :func:`ferjax.networks.interface.gap_residual`;
* the classifier of that mean is affine (:func:`affine_residuals`):
  additivity, homogeneity, and that W reproduces it.

:func:`raise_unless_affine` turns a failed check into a ValueError that
names it, so that a user learns why CAM does not apply and that GradCAM does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

AFFINE_CHECKS = ("additivity f(a+b)-f(0) = [f(a)-f(0)] + [f(b)-f(0)]",
                  "homogeneity f(s*a)-f(0) = s*[f(a)-f(0)]",
                  "linearisation f(a)-f(0) = a @ W")


def affine_residuals(classifier, params, k: int):
    """``(W (K, C), errors (3,), scales (3,))`` of the affine checks (traceable).

    On random probes a, b and scale s (f0 = f(0)): additivity
    ``f(a + b) - f0 == (f(a) - f0) + (f(b) - f0)``, homogeneity
    ``f(s a) - f0 == s (f(a) - f0)``, and that the linearisation W (the
    Jacobian at 0) reproduces ``f(a) - f0 == a @ W``.
    """
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    a = jax.random.normal(keys[0], (8, k), jnp.float32)
    b = jax.random.normal(keys[1], (8, k), jnp.float32) * 3.0
    f = lambda z: classifier(params, z)  # noqa: E731
    f0 = f(jnp.zeros((1, k), jnp.float32))
    fa, fb, fab, f_s = f(a) - f0, f(b) - f0, f(a + b) - f0, f(-2.5 * a) - f0
    w = jacobian_weights(classifier, params, k)
    pairs = ((fab, fa + fb), (f_s, -2.5 * fa), (fa, jnp.dot(a, w, precision="highest")))
    errors = jnp.stack([jnp.abs(lhs - rhs).max() for lhs, rhs in pairs])
    scales = jnp.stack([jnp.abs(rhs).max() + jnp.abs(lhs).max() for lhs, rhs in pairs])
    return w, errors, scales


def _too_large(err, scale, atol: float = 1e-4, rtol: float = 1e-3) -> bool:
    return not np.isfinite(err) or err > atol + rtol * scale


def raise_unless_affine(errors, scales, gap=None):
    """ValueError naming the first check a head fails that CAM needs: global average pooling, then affine."""
    if gap is not None and _too_large(*(float(v) for v in gap)):
        raise ValueError(
            "CAM needs a head that averages the feature maps over space and then applies an affine map "
            f"(y = W^T mean_hw(A) + b); this head depends on where in the maps the features are (max error "
            f"{float(gap[0]):.3g}), as a convolution or a flatten-then-dense layer does. Use gradcam(), or split "
            "the network at a layer after which the head is global average pooling and an affine map.")
    for name, err, scale in zip(AFFINE_CHECKS, np.asarray(errors), np.asarray(scales)):
        if _too_large(err, scale):
            raise ValueError(
                "CAM needs an affine classifier (pooled @ W + b) on the globally average-pooled features; "
                f"this classifier fails {name} (max error {err:.3g}). Use gradcam() for non-linear heads.")


def classifier_weights(classifier, params, k: int, *, check: bool = True):
    """The (K, C) matrix W of an affine classifier, ``W[:, c] = d y_c / d pooled``.

    Obtained with ``jax.jacobian`` at ``pooled = 0``. With ``check`` the
    classifier is first verified to be affine (else ValueError).
    """
    if not check:
        return jacobian_weights(classifier, params, k)
    w, errors, scales = affine_residuals(classifier, params, k)
    raise_unless_affine(errors, scales)
    return w


def jacobian_weights(classifier, params, k: int):
    """(K, C): the Jacobian of ``classifier(params, .)`` at pooled = 0, transposed.

    One reverse pass per class rather than ``jax.jacobian``, which vmaps the
    pullback: a network imported as an exported function has no vmap rule.
    """
    y, pullback = jax.vjp(lambda z: classifier(params, z[None])[0], jnp.zeros((k,), jnp.float32))
    eye = jnp.eye(y.shape[0], dtype=y.dtype)
    return jnp.stack([pullback(eye[c])[0] for c in range(y.shape[0])], axis=1)
