"""ferjax.networks.conv: the hand-written input gradients (stride 1, sub-pixel for stride s) equal XLA's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ferjax.networks.conv import conv_general_dilated

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("shape,kernel,strides,padding", [
    ((64, 64), (3, 3), (2, 2), "SAME"),          # the `small` network's case
    ((33, 31), (3, 3), (2, 2), "SAME"),          # odd sides: unequal padding
    ((17, 20), (7, 7), (2, 2), "SAME"),          # ResNet stem
    ((16, 16), (1, 1), (2, 2), "SAME"),          # projection shortcut
    ((15, 16), (3, 3), (3, 3), ((1, 2), (0, 1))),
    ((20, 20), (3, 3), (2, 2), "VALID"),
    ((9, 9), (4, 4), (2, 3), ((2, 1), (1, 1))),  # kernel not a multiple of the stride
    ((12, 12), (3, 3), (1, 1), "SAME"),          # stride 1: flipped-kernel convolution
    ((11, 13), (4, 4), (1, 1), "SAME"),          # stride 1, even kernel: padding (1, 2)
    ((10, 10), (1, 1), (1, 1), "SAME"),          # stride 1, 1x1
    ((10, 9), (3, 3), (1, 1), ((0, 2), (2, 0))),  # stride 1, one-sided padding
    ((10, 10), (3, 5), (1, 1), "VALID"),
    ((10, 10), (3, 3), (1, 1), ((3, 0), (0, 0))),  # padding wider than the kernel: lax path
    ((10, 10), (3, 3), (2, 2), ((-1, 1), (1, 1))),  # negative padding: lax path
])
@pytest.mark.parametrize("cin", [3, 1])  # 1: grayscale, its own stride-1 rule
def test_gradients_equal_lax(shape, kernel, strides, padding, cin):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, *shape, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((*kernel, cin, 5)), jnp.float32)

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w, strides, padding, dimension_numbers=NHWC,
                                                 precision=lax.Precision.HIGHEST)))

    v0, (dx0, dw0) = jax.value_and_grad(loss(lax.conv_general_dilated), (0, 1))(x, w)
    v1, (dx1, dw1) = jax.value_and_grad(loss(conv_general_dilated), (0, 1))(x, w)
    assert float(v0) == float(v1)  # the forward pass is XLA's own
    np.testing.assert_allclose(dx1, dx0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw1, dw0, rtol=1e-5, atol=1e-5)


def test_other_cases_pass_through():
    x = jnp.ones((1, 8, 8, 4))
    w = jnp.ones((3, 3, 2, 4))
    grouped = conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    ref = lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=NHWC, feature_group_count=2)
    np.testing.assert_array_equal(grouped, ref)
    dilated = conv_general_dilated(x, w[:, :, :1].repeat(4, 2), (2, 2), "SAME", rhs_dilation=(2, 2),
                                   dimension_numbers=NHWC)
    assert dilated.shape == (1, 4, 4, 4)


@pytest.mark.parametrize("strides,padding,custom", [
    ((1, 1), "SAME", True), ((2, 2), "SAME", True), ((1, 1), ((3, 0), (0, 0)), False)])
def test_hand_written_gradient_is_the_one_used(strides, padding, custom):
    # the equalities above would also hold if every case fell through to lax
    x, w = jnp.ones((1, 8, 8, 2)), jnp.ones((3, 3, 2, 4))
    jaxpr = str(jax.make_jaxpr(lambda x, w: conv_general_dilated(x, w, strides, padding,
                                                                 dimension_numbers=NHWC))(x, w))
    assert ("custom_vjp_call" in jaxpr) == custom
