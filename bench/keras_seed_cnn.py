"""The seed CNN in Keras, layer for layer as lib/model/models.ts builds it.

Shared by the Keras peers of the benchmarks (bench/train_keras.py,
bench/serve_peer.py), which run from bench/ and import it as
``from keras_seed_cnn import seed_cnn``. Importing this module does not
import Keras or TensorFlow (the callers time their own imports).

  Conv2D(32,3,relu) MaxPool(2) Conv2D(64,3,relu) MaxPool(2)
  Conv2D(128,3,relu) MaxPool(2) Flatten Dense(128,relu) Dropout(0.5)
  Dense(classes,softmax)
"""


def seed_cnn(keras, size, channels, classes):
    """The seed CNN for size x size x channels inputs and `classes` outputs.

    `keras` is the imported keras module; the model is built, not compiled.

    Example (from a script in bench/)::

        import keras
        from keras_seed_cnn import seed_cnn
        model = seed_cnn(keras, 128, 1, 4)
    """
    from keras import layers

    return keras.Sequential([
        keras.Input((size, size, channels)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(classes, activation="softmax"),
    ])
