"""The released AdapNet++ / SSMA graphs (inference and training) rebuilt with TF1 ops, as a baseline.

The speed target of the port is "at least as fast as the original TF1 graph on the same machine".
The original code (Python 2, `tf.contrib`) no longer runs, so this module rebuilds its inference
graph op for op from `../shared/spec/ARCHITECTURE.md`, with the ops the released network code
uses: `tf.nn.conv2d`, `tf.nn.atrous_conv2d` (space-to-batch dilation), the unfused
`tf.nn.batch_normalization` with the moving statistics, `tf.nn.conv2d_transpose` with a dynamic
output shape, under the TF1 variable scopes, run by a `tf.compat.v1.Session` from a placeholder
of static height and width (as the released evaluation script feeds it).

Because the scopes are the TF1 ones, a TF1 checkpoint restores into it unchanged. Run as a script,
it restores the fixture written by the original graph (`../shared/fixtures/tf1_adapnet_pp.tar.gz`)
and checks that it reproduces that graph's softmax, which is what makes it a faithful baseline:

    python bench/tf1_graph.py            # fixture check (skipped without ../shared) + one timing

`bench/inference.py --modes tf1` times it beside the port. `build_training_graph` adds the
released training half (batch norms in training mode with their update ops, dropout, the
auxiliary heads, the loss with its 0.6/0.5 auxiliary terms, Adam on the poly schedule; SSMA's
stage-2 encoder learning-rate factor and stage-3 frozen experts):
`tests/test_training_step_equivalence.py` checks that one `Trainer` step equals one step of it,
and `bench/train_step.py` times the two against each other.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tarfile
import tempfile
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BN_EPSILON = 1e-5
BN_DECAY = 0.99
# The loss as released (../shared/spec/ARCHITECTURE.md, "Loss"). Written here from the spec, not
# read from ssma_tf.constants: this graph is the reference the port is tested against, so a
# change to the port's constants must make the step-equivalence test fail.
LOG_EPSILON = 1e-10
AUX_WEIGHTS = (0.6, 0.5)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(os.path.dirname(ROOT), "shared", "fixtures", "tf1_adapnet_pp.tar.gz")


class _Builder:
    """Graph-building helpers with the released graph's variable layout (`<scope>/weights`, ...)."""

    def __init__(self, tf, seed: int = 0, training: bool = False, keep_prob: float = 1.0):
        self.tf = tf
        self.v1 = tf.compat.v1
        self.seed = seed
        # Training mode: batch norms normalise with the batch's moments and queue updates of
        # their moving averages in `update_ops` (TF1's UPDATE_OPS), and dropout is on. SSMA's
        # frozen experts are built with `training` and `trainable` off.
        self.training = training
        self.trainable = True
        self.keep_prob = keep_prob
        self.update_ops = []

    def _variable(self, name, shape, stddev=None, value=None, trainable=None):
        if stddev is not None:
            init = self.v1.truncated_normal_initializer(stddev=stddev, seed=self.seed)
            self.seed += 1
        else:
            init = self.v1.constant_initializer(value)
        trainable = self.trainable if trainable is None else trainable
        return self.v1.get_variable(name, shape, initializer=init, dtype=self.tf.float32, trainable=trainable)

    def _kernel(self, k, c_in, c_out, transposed=False):
        # He init as released; only the timing and the fixture check depend on these values.
        shape = [k, k, c_out, c_in] if transposed else [k, k, c_in, c_out]
        return self._variable("weights", shape, stddev=(2.0 / (k * k * c_in)) ** 0.5)

    def bn(self, x):
        channels = x.shape[-1]
        with self.v1.variable_scope("BatchNorm"):
            gamma = self._variable("gamma", [channels], value=1.0)
            beta = self._variable("beta", [channels], value=0.0)
            mean = self._variable("moving_mean", [channels], value=0.0, trainable=False)
            variance = self._variable("moving_variance", [channels], value=1.0, trainable=False)
        if not self.training:
            return self.tf.nn.batch_normalization(x, mean, variance, beta, gamma, BN_EPSILON)
        # The batch's mean and biased variance over N, H, W; the moving averages decay by 0.99.
        batch_mean, batch_variance = self.tf.nn.moments(x, [0, 1, 2])
        for moving, value in ((mean, batch_mean), (variance, batch_variance)):
            self.update_ops.append(self.v1.assign_sub(moving, (moving - value) * (1.0 - BN_DECAY)))
        return self.tf.nn.batch_normalization(x, batch_mean, batch_variance, beta, gamma, BN_EPSILON)

    def conv(self, x, k, c_out, stride=1, rate=1, bias=False):
        kernel = self._kernel(k, int(x.shape[-1]), c_out)
        if rate > 1:
            y = self.tf.nn.atrous_conv2d(x, kernel, rate, padding="SAME")
        else:
            y = self.tf.nn.conv2d(x, kernel, [1, stride, stride, 1], padding="SAME")
        if bias:
            y = self.tf.nn.bias_add(y, self._variable("biases", [c_out], value=0.01))
        return y

    def cbr(self, x, k, c_out, scope, stride=1, rate=1, relu=True):
        with self.v1.variable_scope(scope):
            y = self.bn(self.conv(x, k, c_out, stride, rate))
        return self.tf.nn.relu(y) if relu else y

    def split_conv(self, x, c_out, rates):
        """The multiscale kernel: one variable, halves run at their own rates, concatenated."""
        kernel = self._kernel(3, int(x.shape[-1]), c_out)
        halves = self.tf.split(kernel, 2, axis=3)
        outs = []
        for half, rate in zip(halves, rates):
            if rate > 1:
                outs.append(self.tf.nn.atrous_conv2d(x, half, rate, padding="SAME"))
            else:
                outs.append(self.tf.nn.conv2d(x, half, [1, 1, 1, 1], padding="SAME"))
        return self.tf.concat(outs, axis=3)

    def tconv_bn(self, x, k, c_out, stride, scope):
        with self.v1.variable_scope(scope):
            kernel = self._kernel(k, int(x.shape[-1]), c_out, transposed=True)
            shape = self.tf.shape(x)
            out_shape = self.tf.stack([shape[0], shape[1] * stride, shape[2] * stride, c_out])
            y = self.tf.nn.conv2d_transpose(x, kernel, out_shape, [1, stride, stride, 1], padding="SAME")
            # conv2d_transpose loses the static shape with a dynamic output shape; the next
            # concatenation and batch norm need the channel count.
            y.set_shape([None, None, None, c_out])
            return self.bn(y)

    # --- Encoder --------------------------------------------------------------------------------

    def _pre(self, x, block, unit):
        """relu(BN stored under the previous unit's conv3 scope)(x)."""
        with self.v1.variable_scope(f"block{block}/unit_{unit}/bottleneck_v1/conv3"):
            return self.tf.nn.relu(self.bn(x))

    def _unit(self, x, a, filters, block, unit, stride=1, rates=None, shortcut=None):
        """conv1 → conv2 (plain or multiscale) → conv3, plus the shortcut."""
        with self.v1.variable_scope(f"block{block}/unit_{unit}/bottleneck_v1"):
            h1 = self.cbr(a, 1, filters, "conv1")
            if rates is None:
                h = self.cbr(h1, 3, filters, "conv2", stride=stride)
            else:
                with self.v1.variable_scope("conv2"):
                    h = self.tf.nn.relu(self.bn(self.split_conv(h1, filters, rates)))
            with self.v1.variable_scope("conv3"):
                r = self.conv(h, 1, filters * 4)
            if (block, unit) == (4, 3) and self.training and self.keep_prob < 1.0:
                r = self.tf.nn.dropout(r, rate=1.0 - self.keep_prob)
            if shortcut is None:
                return r + x
            source = h1 if shortcut == "conv1" else a
            with self.v1.variable_scope("shortcut"):
                return r + self.conv(source, 1, filters * 4, stride=stride)

    def encoder(self, image, rates3=((1, 2),) * 4, rates4=((2, 2),) * 3, easpp_rates=(3, 6, 12)):
        """The AdapNet++ encoder; returns (eASPP output, skip1, skip2)."""
        tf = self.tf
        with self.v1.variable_scope("conv0"):
            x = self.bn(image)
        x = self.cbr(x, 7, 64, "conv1", stride=2)
        x = tf.nn.max_pool2d(x, 3, 2, padding="SAME")
        x = self._unit(x, x, 64, 1, 1, shortcut="conv1")
        for u in (2, 3):
            x = self._unit(x, self._pre(x, 1, u - 1), 64, 1, u)
        b1 = self._pre(x, 1, 3)
        x = self._unit(b1, b1, 128, 2, 1, stride=2, shortcut="input")
        for u in (2, 3, 4):
            x = self._unit(x, self._pre(x, 2, u - 1), 128, 2, u, rates=(1, 2) if u == 4 else None)
        b2 = self._pre(x, 2, 4)
        x = self._unit(b2, b2, 256, 3, 1, stride=2, shortcut="input")
        for u in range(2, 7):
            x = self._unit(x, self._pre(x, 3, u - 1), 256, 3, u, rates=None if u == 2 else rates3[u - 3])
        a = self._pre(x, 3, 6)
        x = self._unit(x, a, 512, 4, 1, rates=rates4[0], shortcut="input")
        for u in (2, 3):
            x = self._unit(x, self._pre(x, 4, u - 1), 512, 4, u, rates=rates4[u - 1])
        b4 = self._pre(x, 4, 3)
        skip1 = self.cbr(b1, 1, 24, "conv32", relu=False)
        skip2 = self.cbr(b2, 1, 24, "conv174", relu=False)

        branches = [self.cbr(b4, 1, 256, "conv256")]
        for rate, (reduce, atrous1, atrous2, expand) in zip(
            easpp_rates, (("conv70", "conv7", "conv247", "conv71"), ("conv80", "conv8", "conv248", "conv81"),
                          ("conv90", "conv9", "conv249", "conv91"))):
            y = self.cbr(b4, 1, 64, reduce)
            y = self.cbr(y, 3, 64, atrous1, rate=rate)
            y = self.cbr(y, 3, 64, atrous2, rate=rate)
            branches.append(self.cbr(y, 1, 256, expand))
        pooled = self.cbr(tf.reduce_mean(b4, axis=[1, 2], keepdims=True), 1, 256, "conv57")
        branches.append(self.v1.image.resize_bilinear(pooled, tf.shape(b4)[1:3]))
        branches[-1].set_shape([None, None, None, 256])
        easpp = self.cbr(tf.concat(branches, axis=3), 1, 256, "conv10", relu=False)
        return easpp, skip1, skip2

    # --- Decoder --------------------------------------------------------------------------------

    def _attention(self, features, skip, scope):
        z = self.cbr(self.tf.reduce_mean(features, axis=[1, 2], keepdims=True), 1, int(skip.shape[-1]), scope)
        return z * skip

    def decoder(self, features, skip2, skip1, num_classes, attention=False):
        tf = self.tf
        up1 = self.tconv_bn(features, 4, 256, 2, "conv41")
        if attention:
            skip2 = self._attention(up1, skip2, "conv550")
        x = self.cbr(tf.concat([up1, skip2], axis=3), 3, 256, "conv89")
        x = self.cbr(x, 3, 256, "conv96")
        up2 = self.tconv_bn(x, 4, 256, 2, "conv16")
        if attention:
            skip1 = self._attention(up2, skip1, "conv551")
        x = self.cbr(tf.concat([up2, skip1], axis=3), 3, 256, "conv88")
        x = self.cbr(x, 3, 256, "conv95")
        x = self.cbr(x, 1, num_classes, "conv78")
        logits = self.tconv_bn(x, 8, num_classes, 4, "conv5")
        return {"logits": logits, "softmax": tf.nn.softmax(logits), "up1": up1, "up2": up2}

    def aux_heads(self, up1, up2, num_classes, size):
        """The multiresolution supervision: `conv911` on up2, `conv912` on up1, resized, softmax.

        The resize is TF1's `tf.image.resize_images` default, `ResizeBilinear` without corner
        alignment and without half-pixel centres.
        """
        heads = {}
        for name, source, scope in (("aux_up2", up2, "conv911"), ("aux_up1", up1, "conv912")):
            head = self.cbr(source, 1, num_classes, scope, relu=False)
            resized = self.v1.image.resize_bilinear(head, size, align_corners=False, half_pixel_centers=False)
            heads[name] = self.tf.nn.softmax(resized)
        return heads

    def ssma_block(self, a, b, reduction, gate_scopes, out_scope, out_kernel, out_bn):
        tf = self.tf
        x = tf.concat([a, b], axis=3)
        channels = int(x.shape[-1])
        with self.v1.variable_scope(gate_scopes[0]):
            s = tf.nn.relu(self.conv(x, 3, channels // reduction, bias=True))
        with self.v1.variable_scope(gate_scopes[1]):
            s = tf.sigmoid(self.conv(s, 3, channels, bias=True))
        with self.v1.variable_scope(out_scope):
            if out_bn:
                return self.bn(self.conv(x * s, out_kernel, 256))
            return self.conv(x * s, out_kernel, 24, bias=True)


def _network(builder, model: str, num_classes: int, height: int, width: int, aux_heads: bool = False,
             frozen_experts: bool = False):
    """Placeholders and the released network on them, in the current graph.

    Returns:
        (list of input placeholders, dict of output tensors: `logits`, `softmax` and, with
        `aux_heads`, `aux_up2`/`aux_up1`).
    """
    tf, v1 = builder.tf, builder.v1
    if model == "adapnet_pp":
        image = v1.placeholder(tf.float32, [None, height, width, 3], name="images")
        with v1.variable_scope("resnet_v2_50"):
            easpp, skip1, skip2 = builder.encoder(image)
            outputs = builder.decoder(easpp, skip2, skip1, num_classes)
            if aux_heads:
                outputs.update(builder.aux_heads(outputs["up1"], outputs["up2"], num_classes, [height, width]))
        inputs = [image]
    elif model == "ssma":
        inputs = [v1.placeholder(tf.float32, [None, height, width, 3], name=f"modality{i}") for i in (1, 2)]
        streams = []
        training = builder.training
        if frozen_experts:
            # The released SSMA script: experts not trainable, their batch norms (and so their
            # dropout) in inference mode.
            builder.training, builder.trainable = False, False
        for scope, image in zip(("rgb", "depth"), inputs):
            with v1.variable_scope(f"{scope}/resnet_v2_50"):
                streams.append(builder.encoder(image))
        builder.training, builder.trainable = training, True
        (e1, s1a, s2a), (e2, s1b, s2b) = streams
        fused = builder.ssma_block(e1, e2, 16, ("conv511", "conv512"), "conv515", 1, True)
        skip8 = builder.ssma_block(s2a, s2b, 6, ("conv513", "conv514"), "conv552", 3, False)
        skip4 = builder.ssma_block(s1a, s1b, 6, ("conv518", "conv519"), "conv553", 3, False)
        outputs = builder.decoder(fused, skip8, skip4, num_classes, attention=True)
        if aux_heads:
            outputs.update(builder.aux_heads(outputs["up1"], outputs["up2"], num_classes, [height, width]))
    else:
        raise ValueError(f"model must be 'adapnet_pp' or 'ssma', got {model!r}")
    return inputs, outputs


def build_graph(model: str, num_classes: int, height: int, width: int, seed: int = 0):
    """Builds the released inference graph in a new `tf.Graph`.

    Args:
        model: "adapnet_pp" or "ssma".
        num_classes: C.
        height, width: the static input size of the placeholders (multiples of 16).
        seed: seed of the random kernels.

    Returns:
        (graph, list of input placeholders (B, height, width, 3), softmax tensor, logits tensor).
    """
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        inputs, outputs = _network(_Builder(tf, seed), model, num_classes, height, width)
    return graph, inputs, outputs["softmax"], outputs["logits"]


@dataclasses.dataclass
class TrainingGraph:
    """The released training graph: what to feed, what one step runs, what to read back.

    Attributes:
        graph: the `tf.Graph`.
        inputs: image placeholders (one for AdapNet++, two for SSMA), (B, H, W, 3) BGR 0..255.
        labels: one-hot label placeholder (B, H, W, C), as the released pipeline fed it.
        loss: the total loss; terms: {"main", "aux_up2", "aux_up1"} unweighted terms.
        gradients: {variable name: gradient of the loss} for every trained variable.
        learning_rates: {variable name: the learning rate its Adam uses at this step}.
        train_op: one step: Adam on every trained variable, then the global step, after the
            batch norms' moving-average updates (TF1's UPDATE_OPS dependency).
        global_step, beta_powers: the step counter and every Adam's (beta1_power, beta2_power)
            variables (to start at a later step of the schedule consistently).
        model_variables: the network's variables (what a checkpoint restores; no Adam slots).
    """

    graph: Any
    inputs: list
    labels: Any
    loss: Any
    terms: dict
    gradients: dict
    learning_rates: dict
    train_op: Any
    global_step: Any
    beta_powers: list
    model_variables: list


def build_training_graph(model: str, num_classes: int, height: int, width: int, *, learning_rate: float,
                         max_iteration: int, power: float = 0.9, end_learning_rate: float = 1e-4,
                         adam_epsilon: float = 1e-8, aux_heads: bool = True,
                         aux_weights=AUX_WEIGHTS, keep_prob: float = 0.3, frozen_experts: bool = False,
                         encoder_lr_multiplier: float = 1.0, seed: int = 0) -> TrainingGraph:
    """Builds the released training graph (its `train.py`) in a new `tf.Graph`.

    ARCHITECTURE.md, "Loss": `L(softmax) + 0.6·L(aux conv911) + 0.5·L(aux conv912)` with
    `L(p) = mean over B·H·W of -Σ_c w_c y_c log(p_c + 1e-10)` (void weight 0), minimised by
    `tf.train.AdamOptimizer(lr, 0.9, 0.999, ε)` on `tf.train.polynomial_decay(lr0, step, T, end,
    power)`, run after the batch norms' update ops. SSMA (Section 5.1.2 of the paper): in stage 2
    the experts are trained by a second Adam at `encoder_lr_multiplier` × the rate (the same
    schedule and step count, so the same bias correction); in stage 3 (`frozen_experts`) they are
    not trainable and their batch norms run in inference mode.

    Args:
        model: "adapnet_pp" or "ssma".
        num_classes: C.
        height, width: static input size.
        learning_rate, max_iteration, power, end_learning_rate: the poly schedule.
        adam_epsilon: Adam's ε (TF1 default 1e-8).
        aux_heads: build the auxiliary heads and their loss terms (released: AdapNet++ yes, SSMA no).
        aux_weights: weights of the (conv911, conv912) terms.
        keep_prob: block-4 dropout keep probability (released 0.3; 1 turns dropout off).
        frozen_experts: SSMA stage 3.
        encoder_lr_multiplier: factor on the experts' learning rate (SSMA stage 2: 0.1).
        seed: seed of the random kernels.

    Returns:
        A `TrainingGraph`.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        builder = _Builder(tf, seed, training=True, keep_prob=keep_prob)
        inputs, outputs = _network(builder, model, num_classes, height, width, aux_heads=aux_heads,
                                   frozen_experts=frozen_experts)
        model_variables = v1.global_variables()
        labels = v1.placeholder(tf.float32, [None, height, width, num_classes], name="labels")
        class_weights = tf.constant([0.0] + [1.0] * (num_classes - 1))

        def cross_entropy(probs):
            return tf.reduce_mean(-tf.reduce_sum(class_weights * labels * tf.math.log(probs + LOG_EPSILON), axis=3))

        terms = {"main": cross_entropy(outputs["softmax"])}
        loss = terms["main"]
        if aux_heads:
            for name, weight in zip(("aux_up2", "aux_up1"), aux_weights):
                terms[name] = cross_entropy(outputs[name])
                loss = loss + weight * terms[name]

        global_step = v1.train.get_or_create_global_step()
        rate = v1.train.polynomial_decay(learning_rate, global_step, max_iteration,
                                         end_learning_rate=end_learning_rate, power=power)
        trained = v1.trainable_variables()
        is_expert = lambda v: v.op.name.startswith(("rgb/", "depth/"))  # noqa: E731
        groups = [([v for v in trained if not is_expert(v)], rate)]
        if model == "ssma" and encoder_lr_multiplier != 1.0:
            groups.append(([v for v in trained if is_expert(v)], rate * encoder_lr_multiplier))
        else:
            groups[0] = (trained, rate)
        gradient_list = tf.gradients(loss, trained)
        gradients = {v.op.name: g for v, g in zip(trained, gradient_list)}
        learning_rates, applies, beta_powers = {}, [], []
        with tf.control_dependencies(builder.update_ops):
            for index, (variables, group_rate) in enumerate(groups):
                if not variables:
                    continue
                optimizer = v1.train.AdamOptimizer(group_rate, beta1=0.9, beta2=0.999, epsilon=adam_epsilon,
                                                   name=f"Adam{index}" if index else "Adam")
                pairs = [(gradients[v.op.name], v) for v in variables]
                applies.append(optimizer.apply_gradients(pairs))
                beta_powers.extend(optimizer._get_beta_accumulators())
                learning_rates.update({v.op.name: group_rate for v in variables})
            with tf.control_dependencies(applies):
                train_op = v1.assign_add(global_step, 1)
    return TrainingGraph(graph, inputs, labels, loss, terms, gradients, learning_rates, train_op,
                         global_step, beta_powers, model_variables)


def session_for(graph, checkpoint: str | None = None, var_list=None, optimize: bool = True):
    """A TF1 session on `graph` with variables initialised, or restored from a TF1 checkpoint.

    With `var_list`, only those variables are restored (the others, e.g. Adam's slots, start at
    their initial values). `optimize=False` switches Grappler's graph rewrites off: the same
    arithmetic op for op, without the seconds of graph optimisation before the first run (for
    tests; timings keep the default).
    """
    import tensorflow as tf

    config = tf.compat.v1.ConfigProto()
    if not optimize:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    with graph.as_default():
        session = tf.compat.v1.Session(graph=graph, config=config)
        if checkpoint is None:
            session.run(tf.compat.v1.global_variables_initializer())
        else:
            if var_list is not None:
                session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(var_list=var_list).restore(session, checkpoint)
    return session


def check_fixture(fixture: str = FIXTURE) -> float | None:
    """Restores the original graph's fixture checkpoint; returns the largest softmax difference.

    None when the fixture is not there (a fresh clone without `../shared`).
    """
    if not os.path.exists(fixture):
        return None
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(fixture) as archive:
            archive.extractall(folder, filter="data")
        reference = np.load(os.path.join(folder, "reference.npz"))
        _, height, width, _ = reference["modality1"].shape
        classes = reference["softmax"].shape[-1]
        graph, inputs, softmax, _ = build_graph("adapnet_pp", classes, height, width)
        with session_for(graph, os.path.join(folder, "model.ckpt")) as session:
            value = session.run(softmax, {inputs[0]: reference["modality1"]})
    return float(np.max(np.abs(value - reference["softmax"])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="adapnet_pp", choices=("adapnet_pp", "ssma"))
    parser.add_argument("--size", default="384x768")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    import numpy as np

    import _common  # the script's folder is on the path when run; the tests import this module alone

    height, width = _common.parse_size(parser, args.size)  # before the fixture check
    _common.positive(parser, runs=args.runs)  # a median of no runs printed as nan before
    difference = check_fixture()
    if difference is None:
        print("fixture check: skipped (no ../shared/fixtures)")
    else:
        print(f"fixture check: largest softmax difference to the original graph {difference:.2e}")
    graph, inputs, softmax, _ = build_graph(args.model, 12, height, width)
    feed = {p: np.random.default_rng(0).uniform(0, 255, (1, height, width, 3)).astype(np.float32) for p in inputs}
    with session_for(graph) as session:
        session.run(softmax, feed)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            session.run(softmax, feed)
            times.append(time.perf_counter() - start)
    print(f"{args.model} {args.size} batch 1: median {np.median(times):.3f} s "
          f"(range {min(times):.3f}-{max(times):.3f}) "
          f"over {args.runs} runs")
    return 0 if difference is None or difference < 1e-4 else 1


if __name__ == "__main__":
    import _common  # the script's folder is first on the path when it runs

    sys.exit(_common.run_main(main))
