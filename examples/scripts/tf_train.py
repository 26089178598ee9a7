"""The Keras digits classifier, trained by every worker of a TensorFlow job together.

Dense(128, relu) on 784 inputs, then Dense(10, softmax); sparse categorical cross-entropy, Adam,
accuracy; 5 epochs under tf.distribute.MultiWorkerMirroredStrategy, which reads the TF_CONFIG
Ringleader gives each worker (spec.framework: tensorflow). The data needs no download: scikit-
learn's bundled 8x8 digits, each pixel made 3x3 and framed to 28x28 as in MNIST.

A worker that fails, or a pod that is deleted, restarts the whole group; BackupAndRestore on the
job's checkpoint volume makes it resume at the last finished epoch. Needs tensorflow, tf-keras,
scikit-learn and Ringleader's client library (tools/images/tensorflow.Dockerfile).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 2: Keras 3's fit fails under MWMS

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from ringleader_client.keras import BackupAndRestore, RingleaderCallback

EPOCHS = int(os.environ.get("EPOCHS", "5"))
BATCH_PER_WORKER = int(os.environ.get("BATCH_PER_WORKER", "32"))
STEP_SECONDS = float(os.environ.get("STEP_SECONDS", "0"))  # a pause per step, to watch it run
CHECKPOINT_DIR = os.environ.get("RINGLEADER_CHECKPOINT_DIR", "/checkpoints")


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and held-out digits as 784 floats in [0, 1], the same split on every worker."""
    digits = load_digits()
    images = np.kron(digits.images / 16.0, np.ones((3, 3)))  # 8x8 -> 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # -> 28x28
    x = images.reshape(len(images), 28 * 28).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return x_train, y_train, x_test, y_test


def build_model() -> tf.keras.Model:
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Dense(128, activation="relu", input_shape=(784,)),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def batches(x: np.ndarray, y: np.ndarray, global_batch: int, repeat: bool) -> tf.data.Dataset:
    """The examples in global batches; each worker trains on its share of every batch."""
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if repeat:
        data = data.shuffle(len(x), seed=0).repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.batch(global_batch).with_options(options)


class Pace(tf.keras.callbacks.Callback):
    """Sleeps STEP_SECONDS after each step (0: not at all)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        time.sleep(STEP_SECONDS)


def task_index() -> int:
    return int(json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0))


def main() -> None:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    workers = strategy.num_replicas_in_sync
    x_train, y_train, x_test, y_test = load_data()
    global_batch = BATCH_PER_WORKER * workers
    with strategy.scope():
        model = build_model()
    backup = BackupAndRestore(backup_dir=os.path.join(CHECKPOINT_DIR, "backup"))
    callbacks = [backup, RingleaderCallback(global_batch_size=global_batch), Pace()]
    model.fit(
        batches(x_train, y_train, global_batch, repeat=True),
        epochs=EPOCHS,
        steps_per_epoch=len(x_train) // global_batch,
        callbacks=callbacks,
        verbose=2,
    )
    _, accuracy = model.evaluate(batches(x_test, y_test, global_batch, repeat=False), verbose=0)
    # Every worker saves (it is a collective); only worker 0's copy is kept, on the volume.
    chief = task_index() == 0
    target = os.path.join(CHECKPOINT_DIR, "model") if chief else tempfile.mkdtemp()
    model.save(target)
    if chief:
        print(f"held-out accuracy {accuracy:.3f} on {len(x_test)} digits; model in {target}")


if __name__ == "__main__":
    main()
