"""Synthetic EEG- and EOG-like recordings with a per-subject shift (numpy only).

Shared by `make_models.py` (pre-training on source subjects), `calibrate.py` (the
new-subject calibration demo) and the tests; no data set is needed. Everything is
deterministic: a subject is a seed, a batch comes from a `numpy.random.Generator` the
caller seeds.

EEG (motor-imagery-like, 4 classes, 22 electrodes x 256 samples at 128 Hz, 2 s): each
class adds an oscillation at a class-specific frequency (8, 12, 18, 25 Hz) whose
amplitude follows a class-specific spatial pattern (a smooth bump over a few
electrodes), with a random phase per trial, on top of spatially correlated background
noise (1/f-like in time). A subject changes the recording as real subjects do: a gain
and an offset per electrode (electrode impedance, reference), a shift of every class
frequency (individual alpha/beta peaks) and a small shift of the spatial patterns.

EOG (eye movements, 4 classes, 2 channels (horizontal, vertical) x 512 samples at 128 Hz,
4 s): fixation (no event), a saccade to the left or to the right (a sigmoid step on the
horizontal channel, a small cross-talk on the vertical one), a blink (a bump on the
vertical channel), at a random time, on top of a slow drift and noise. A subject has a
gain and an offset per channel, a cross-talk between channels, and its own saccade
speed and blink width.

`shift` scales how far a subject lies from the average subject: the source subjects
of pre-training use `SOURCE_SHIFT`, a new subject of the calibration demo `NEW_SHIFT`,
so a model that is not adapted loses accuracy on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 128.0
"""Samples per second of both signals."""

EEG_CLASSES, EEG_ELECTRODES, EEG_SAMPLES = 4, 22, 256
EEG_FREQUENCIES = (8.0, 12.0, 18.0, 25.0)
EEG_AMPLITUDE = 0.6
EEG_CENTRES = (3.0, 17.0, 10.0, 6.5)
"""Electrode (on a 0..21 line) at the centre of each class's spatial pattern."""

EOG_CLASSES, EOG_CHANNELS, EOG_SAMPLES = 4, 2, 512
EOG_LABELS = ("fixation", "saccade left", "saccade right", "blink")

SOURCE_SHIFT, NEW_SHIFT = 0.5, 1.5
SOURCE_SUBJECTS = tuple(range(1, 9))
NEW_SUBJECT = 101


@dataclass(frozen=True)
class EegSubject:
    gains: np.ndarray
    """(electrodes,) multiplies each electrode's signal."""
    offsets: np.ndarray
    """(electrodes,) added to each electrode (a DC offset)."""
    frequency_shift: float
    """Hz added to every class frequency."""
    centre_shift: float
    """Electrodes by which every spatial pattern moves."""


@dataclass(frozen=True)
class EogSubject:
    gains: np.ndarray
    """(channels,)"""
    offsets: np.ndarray
    """(channels,)"""
    cross_talk: float
    """Fraction of the horizontal signal that leaks into the vertical channel."""
    saccade_time: float
    """Seconds a saccade takes (the width of its sigmoid step)."""
    blink_width: float
    """Seconds: the standard deviation of a blink's Gaussian bump."""


def eeg_subject(seed: int, shift: float = SOURCE_SHIFT) -> EegSubject:
    rng = np.random.default_rng([7, seed])
    return EegSubject(
        gains=np.exp(shift * 0.6 * rng.standard_normal(EEG_ELECTRODES)),
        offsets=shift * 1.5 * rng.standard_normal(EEG_ELECTRODES),
        frequency_shift=float(shift * rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0)),
        centre_shift=float(shift * rng.uniform(-1.5, 1.5)),
    )


def eog_subject(seed: int, shift: float = SOURCE_SHIFT) -> EogSubject:
    rng = np.random.default_rng([11, seed])
    return EogSubject(
        gains=np.exp(shift * 0.7 * rng.standard_normal(EOG_CHANNELS)),
        offsets=shift * 2.0 * rng.standard_normal(EOG_CHANNELS),
        cross_talk=float(shift * rng.uniform(-0.6, 0.6)),
        saccade_time=float(0.05 * np.exp(shift * rng.uniform(-1.0, 1.0))),
        blink_width=float(0.08 * np.exp(shift * rng.uniform(-0.8, 0.8))),
    )


def _pink_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Noise with a 1/f power spectrum along the last axis, unit standard deviation."""
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    frequencies = np.fft.rfftfreq(shape[-1])
    spectrum *= 1.0 / np.sqrt(np.maximum(frequencies, frequencies[1]))
    noise = np.fft.irfft(spectrum, n=shape[-1], axis=-1)
    return noise / noise.std(axis=-1, keepdims=True)


def eeg_batch(subject: EegSubject, count: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """`count` trials of `subject`: inputs (count, 1, 22, 256) float32, labels (count,)
    int32 drawn uniformly."""
    labels = rng.integers(0, EEG_CLASSES, count).astype(np.int32)
    time = np.arange(EEG_SAMPLES) / RATE
    electrodes = np.arange(EEG_ELECTRODES)
    mixing = np.exp(-0.5 * ((electrodes[:, None] - electrodes[None, :]) / 2.0) ** 2)
    background = np.einsum("ij,njt->nit", mixing / mixing.sum(1, keepdims=True),
                           _pink_noise(rng, (count, EEG_ELECTRODES, EEG_SAMPLES)))
    signals = 2.0 * background + 0.3 * rng.standard_normal(background.shape)
    for n, label in enumerate(labels):
        centre = EEG_CENTRES[label] + subject.centre_shift
        pattern = np.exp(-0.5 * ((electrodes - centre) / 2.5) ** 2)
        frequency = EEG_FREQUENCIES[label] + subject.frequency_shift
        phase = rng.uniform(0, 2 * np.pi)
        amplitude = rng.uniform(0.8, 1.2)
        signals[n] += EEG_AMPLITUDE * amplitude * pattern[:, None] * np.sin(
            2 * np.pi * frequency * time + phase)[None, :]
    signals = subject.gains[None, :, None] * signals + subject.offsets[None, :, None]
    return signals[:, None].astype(np.float32), labels


def eog_batch(subject: EogSubject, count: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """`count` trials of `subject`: inputs (count, 2, 1, 512) float32 (channels
    horizontal, vertical), labels (count,) int32 drawn uniformly."""
    labels = rng.integers(0, EOG_CLASSES, count).astype(np.int32)
    time = np.arange(EOG_SAMPLES) / RATE
    signals = 0.4 * _pink_noise(rng, (count, EOG_CHANNELS, EOG_SAMPLES))
    signals += 0.15 * rng.standard_normal(signals.shape)
    signals += rng.uniform(-0.3, 0.3, (count, EOG_CHANNELS, 1)) * (time / time[-1])
    for n, label in enumerate(labels):
        onset = rng.uniform(0.8, time[-1] - 0.8)
        size = rng.uniform(0.8, 1.5)
        if label in (1, 2):
            step = size * 0.5 * (1 + np.tanh((time - onset) / (subject.saccade_time / 2)))
            step *= -1.0 if label == 1 else 1.0
            signals[n, 0] += step
            signals[n, 1] += subject.cross_talk * step
        elif label == 3:
            signals[n, 1] += 2 * size * np.exp(
                -0.5 * ((time - onset) / subject.blink_width) ** 2)
    signals = subject.gains[None, :, None] * signals + subject.offsets[None, :, None]
    return signals[:, :, None, :].astype(np.float32), labels
