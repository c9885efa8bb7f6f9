"""The released AdapNet++ / SSMA inference graphs rebuilt with TF1 ops, as a same-machine baseline.

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

`bench/inference.py --modes tf1` times it beside the port.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BN_EPSILON = 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(os.path.dirname(ROOT), "shared", "fixtures", "tf1_adapnet_pp.tar.gz")


class _Builder:
    """Graph-building helpers with the released graph's variable layout (`<scope>/weights`, ...)."""

    def __init__(self, tf, seed: int = 0):
        self.tf = tf
        self.v1 = tf.compat.v1
        self.seed = seed

    def _variable(self, name, shape, stddev=None, value=None):
        if stddev is not None:
            init = self.v1.truncated_normal_initializer(stddev=stddev, seed=self.seed)
            self.seed += 1
        else:
            init = self.v1.constant_initializer(value)
        return self.v1.get_variable(name, shape, initializer=init, dtype=self.tf.float32)

    def _kernel(self, k, c_in, c_out, transposed=False):
        # He init as released; only the timing and the fixture check depend on these values.
        shape = [k, k, c_out, c_in] if transposed else [k, k, c_in, c_out]
        return self._variable("weights", shape, stddev=(2.0 / (k * k * c_in)) ** 0.5)

    def bn(self, x):
        channels = x.shape[-1]
        with self.v1.variable_scope("BatchNorm"):
            gamma = self._variable("gamma", [channels], value=1.0)
            beta = self._variable("beta", [channels], value=0.0)
            mean = self._variable("moving_mean", [channels], value=0.0)
            variance = self._variable("moving_variance", [channels], value=1.0)
        return self.tf.nn.batch_normalization(x, mean, variance, beta, gamma, BN_EPSILON)

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
        return logits, tf.nn.softmax(logits)

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
        builder = _Builder(tf, seed)
        v1 = tf.compat.v1
        if model == "adapnet_pp":
            image = v1.placeholder(tf.float32, [None, height, width, 3], name="images")
            with v1.variable_scope("resnet_v2_50"):
                easpp, skip1, skip2 = builder.encoder(image)
                logits, softmax = builder.decoder(easpp, skip2, skip1, num_classes)
            inputs = [image]
        elif model == "ssma":
            inputs = [v1.placeholder(tf.float32, [None, height, width, 3], name=f"modality{i}") for i in (1, 2)]
            streams = []
            for scope, image in zip(("rgb", "depth"), inputs):
                with v1.variable_scope(f"{scope}/resnet_v2_50"):
                    streams.append(builder.encoder(image))
            (e1, s1a, s2a), (e2, s1b, s2b) = streams
            fused = builder.ssma_block(e1, e2, 16, ("conv511", "conv512"), "conv515", 1, True)
            skip8 = builder.ssma_block(s2a, s2b, 6, ("conv513", "conv514"), "conv552", 3, False)
            skip4 = builder.ssma_block(s1a, s1b, 6, ("conv518", "conv519"), "conv553", 3, False)
            logits, softmax = builder.decoder(fused, skip8, skip4, num_classes, attention=True)
        else:
            raise ValueError(f"model must be 'adapnet_pp' or 'ssma', got {model!r}")
    return graph, inputs, softmax, logits


def session_for(graph, checkpoint: str | None = None):
    """A TF1 session on `graph` with variables initialised, or restored from a TF1 checkpoint."""
    import tensorflow as tf

    with graph.as_default():
        session = tf.compat.v1.Session(graph=graph)
        if checkpoint is None:
            session.run(tf.compat.v1.global_variables_initializer())
        else:
            tf.compat.v1.train.Saver().restore(session, checkpoint)
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

    difference = check_fixture()
    if difference is None:
        print("fixture check: skipped (no ../shared/fixtures)")
    else:
        print(f"fixture check: largest softmax difference to the original graph {difference:.2e}")
    height, width = (int(v) for v in args.size.split("x"))
    graph, inputs, softmax, _ = build_graph(args.model, 12, height, width)
    feed = {p: np.random.default_rng(0).uniform(0, 255, (1, height, width, 3)).astype(np.float32) for p in inputs}
    with session_for(graph) as session:
        session.run(softmax, feed)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            session.run(softmax, feed)
            times.append(time.perf_counter() - start)
    print(f"{args.model} {args.size} batch 1: median {np.median(times):.3f} s over {args.runs} runs")
    return 0 if difference is None or difference < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
