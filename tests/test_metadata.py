"""Archival metadata: measured values against files of known properties, Dublin Core validity."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from detectors.metadata import ELEMENTS, generate_metadata, validate_oai_dc
from detectors.metadata.dublin_core import iso_duration
from tests.conftest import DATA, truth

RATE = 48_000


def tone(freq: float, dbfs: float, seconds: float, rate: int = RATE, phase: float = 0.0):  # type: ignore[no-untyped-def]
    t = np.arange(round(seconds * rate)) / rate
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def write(path: Path, data: np.ndarray, rate: int = RATE, subtype: str = "PCM_24") -> Path:  # type: ignore[type-arg]
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def technical(path: Path, **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = generate_metadata(path, **kwargs)["technical"]
    return result


def test_stereo_1khz_tone_at_minus_23_dbfs_reads_minus_23_lufs(tmp_path: Path) -> None:
    # EBU Tech 3341, test 1: the same 1 kHz sine at -23 dBFS on both channels is -23.0 LUFS.
    x = tone(1000, -23, 20)
    tech = technical(write(tmp_path / "t.wav", np.stack([x, x], axis=1)))
    assert tech["loudness"]["integrated_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert tech["sample_peak_dbfs"] == pytest.approx(-23.0, abs=0.05)
    assert tech["channels"] == 2
    assert tech["sample_rate"] == RATE
    assert tech["bit_depth"] == 24


def test_mono_tone_is_one_channel_not_dual_mono(tmp_path: Path) -> None:
    tech = technical(write(tmp_path / "m.wav", tone(1000, -20, 10), subtype="PCM_16"))
    assert tech["loudness"]["integrated_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert tech["bit_depth"] == 16
    assert tech["codec"] == "PCM_16"
    assert tech["container"] == "WAV"


def test_loudness_range_of_a_10_db_step_is_10_lu(tmp_path: Path) -> None:
    # EBU Tech 3342, test 1: 20 s at -20 dBFS then 20 s at -30 dBFS: LRA 10 +/- 1 LU.
    x = np.concatenate([tone(1000, -20, 20), tone(1000, -30, 20)])
    tech = technical(write(tmp_path / "lra.wav", np.stack([x, x], axis=1)))
    assert tech["loudness"]["loudness_range_lu"] == pytest.approx(10.0, abs=1.0)


def test_true_peak_finds_the_peak_between_samples(tmp_path: Path) -> None:
    # A sine at a quarter of the rate, sampled at 45 degrees: samples at 0.707 of the peak.
    fade = np.minimum(1.0, np.minimum(np.arange(RATE * 2), np.arange(RATE * 2)[::-1]) / 4800)
    x = (tone(RATE / 4, -6.02, 2, phase=np.pi / 4) * fade).astype(np.float32)
    tech = technical(write(tmp_path / "tp.wav", x, subtype="FLOAT"))
    assert tech["sample_peak_dbfs"] == pytest.approx(-9.03, abs=0.05)
    assert tech["loudness"]["true_peak_dbtp"] == pytest.approx(-6.02, abs=0.25)


def test_96khz_file_reports_its_rate_and_the_band_it_really_uses(tmp_path: Path) -> None:
    import soxr

    # A 22.05 kHz recording upsampled to 96 kHz: nothing above 11 kHz however high the rate.
    rate = 96_000
    noise = np.random.default_rng(1).standard_normal(22_050 * 5)
    upsampled = soxr.resample(0.1 * noise, 22_050, rate)
    path = write(tmp_path / "hr.wav", upsampled.astype(np.float32), rate=rate)
    tech = technical(path)
    assert tech["sample_rate"] == rate
    assert tech["loudness"]["true_peak_oversampling"] == 2
    assert 9_500 < tech["effective_bandwidth_hz"] < 11_500


def test_dc_offset_and_clipping_are_measured(tmp_path: Path) -> None:
    clean = tone(440, -6, 3) + np.float32(0.05)
    clipped = np.clip(tone(440, 3, 3), -1.0, 1.0)
    tech_clean = technical(write(tmp_path / "dc.wav", clean, subtype="FLOAT"))
    tech_clipped = technical(write(tmp_path / "clip.wav", clipped, subtype="FLOAT"))
    assert tech_clean["dc_offset"][0] == pytest.approx(0.05, abs=1e-3)
    assert tech_clean["clipping_ratio"] == 0.0
    # A sine 3 dB over full scale is above full scale half the time (|sin| > 0.708).
    assert tech_clipped["clipping_ratio"] == pytest.approx(0.5, abs=0.03)


def riff_chunk(ident: bytes, payload: bytes) -> bytes:
    """A RIFF chunk: 4-byte id, little-endian 32-bit size, payload padded to even length."""
    return ident + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def bext_payload(description: str, originator: str, reference: str, date: str, time: str) -> bytes:
    """EBU Tech 3285 v2 ``bext``: Description[256] Originator[32] OriginatorReference[32]
    OriginationDate[10] OriginationTime[8] TimeReference(u64) Version(u16) UMID[64]
    LoudnessValue..MaxShortTermLoudness (5 x i16, 1/100 LU) Reserved[180] CodingHistory."""
    return (
        description.encode("latin-1").ljust(256, b"\0")
        + originator.encode("latin-1").ljust(32, b"\0")
        + reference.encode("latin-1").ljust(32, b"\0")
        + date.encode().ljust(10, b"\0")
        + time.encode().ljust(8, b"\0")
        + struct.pack("<QH", 48_000 * 3600, 2)
        + bytes(64)
        + struct.pack("<hhhhh", -2300, 500, -100, -2000, -2100)
        + bytes(180)
        + b"A=PCM,F=48000,W=24,M=mono,T=original\r\n"
    )


def write_bwf(path: Path, bext: bytes | None, info: dict[bytes, str] | None) -> Path:
    """A WAV with the given ``bext`` chunk and ``LIST/INFO`` entries inserted before ``data``."""
    plain = tmp = path.with_suffix(".plain.wav")
    sf.write(str(tmp), tone(440, -12, 2), RATE, subtype="PCM_16")
    raw = plain.read_bytes()
    data_at = raw.index(b"data")
    extra = riff_chunk(b"bext", bext) if bext is not None else b""
    if info:
        entries = b"".join(riff_chunk(k, v.encode("latin-1") + b"\0") for k, v in info.items())
        extra += riff_chunk(b"LIST", b"INFO" + entries)
    body = raw[12:data_at] + extra + raw[data_at:]
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    return path


def test_bwf_bext_and_riff_info_are_read_and_feed_dublin_core(tmp_path: Path) -> None:
    path = write_bwf(
        tmp_path / "bwf.wav",
        bext_payload(
            "Canto di lavoro, Gargano", "MAXXI Archivio", "IT-MAXXI-0042", "1957:06:02", "10:30:00"
        ),
        {
            b"INAM": "Canto dei carrettieri",
            b"IART": "Coro di Monte Sant'Angelo",
            b"ICOP": "CC BY 4.0",
        },
    )
    meta = generate_metadata(path, curator={"creator": "Alan Lomax (rec.)"})
    bext = meta["technical"]["bext"]
    assert bext["description"] == "Canto di lavoro, Gargano"
    assert bext["originator_ref"] == "IT-MAXXI-0042"
    assert bext["originator_date"] == "1957:06:02"  # as written (Tech 3285 allows ':')
    assert bext["loudness_value"] == pytest.approx(-23.0)
    assert "A=PCM" in bext["coding_history"]
    assert meta["technical"]["riff_info"]["title"] == "Canto dei carrettieri"
    dc, sources = meta["dublin_core"]["elements"], meta["dublin_core"]["sources"]
    assert dc["title"] == ["Canto dei carrettieri"]
    assert sources["title"] == "embedded"
    assert dc["date"] == ["1957-06-02"]  # as W3CDTF in Dublin Core
    assert dc["rights"] == ["CC BY 4.0"]
    assert dc["creator"] == ["Alan Lomax (rec.)"]  # the curator wins over IART
    assert sources["creator"] == "curator"


def test_plain_wav_has_no_bext(tmp_path: Path) -> None:
    tech = technical(write(tmp_path / "plain.wav", tone(440, -12, 1)))
    assert tech["bext"] is None
    assert tech["riff_info"] is None


def test_dublin_core_has_all_15_elements_and_validates(tmp_path: Path) -> None:
    path = write(tmp_path / "dc.wav", tone(440, -12, 2))
    meta = generate_metadata(
        path,
        heritage={"predicted_category": "folk_music", "confidence": 0.9},
        curator={"title": "Tarantella", "language": "it", "rights": "MAXXI"},
        identifier="3f1c8e1e-4a55-4c38-9d0e-0b8f1f7a2c11",
    )
    dc = meta["dublin_core"]
    assert tuple(dc["elements"]) == ELEMENTS
    assert dc["elements"]["type"] == ["Sound"]
    assert dc["elements"]["format"] == ["audio/wav", iso_duration(2.0)]
    assert dc["elements"]["subject"] == ["Folk music"]
    assert "urn:uuid:3f1c8e1e-4a55-4c38-9d0e-0b8f1f7a2c11" in dc["elements"]["identifier"]
    assert dc["elements"]["title"] == ["Tarantella"]
    assert validate_oai_dc(dc["oai_dc"]) == []
    assert 'xml:lang="it"' in dc["oai_dc"]
    assert meta["cultural_tags"]["genre"] == "folk_music"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<dc:type>Sound</dc:type>", "<dc:medium>Sound</dc:medium>"),
        ("<dc:type>Sound</dc:type>", "<dc:type><b>Sound</b></dc:type>"),
        ('xml:lang="it"', 'xml:lang="not a language"'),
        ("</oai_dc:dc>", "<dc:type>Sound</dc:type>"),
    ],
)
def test_records_that_break_the_schema_do_not_validate(tmp_path: Path, old: str, new: str) -> None:
    path = write(tmp_path / "dc.wav", tone(440, -12, 1))
    xml = generate_metadata(path, curator={"title": "T", "language": "it"})["dublin_core"]["oai_dc"]
    broken = xml.replace(old, new)
    assert broken != xml
    assert validate_oai_dc(broken)


def test_unknown_curator_element_is_a_value_error(tmp_path: Path) -> None:
    path = write(tmp_path / "u.wav", tone(440, -12, 1))
    with pytest.raises(ValueError, match="titel"):
        generate_metadata(path, curator={"titel": "typo"})


def test_control_characters_from_a_curator_never_break_the_xml(tmp_path: Path) -> None:
    path = write(tmp_path / "c.wav", tone(440, -12, 1))
    meta = generate_metadata(
        path, curator={"title": "Bell\x07 & <chant>", "description": ["a", "b"]}
    )
    assert validate_oai_dc(meta["dublin_core"]["oai_dc"]) == []
    assert meta["dublin_core"]["elements"]["title"] == ["Bell & <chant>"]


def test_tempo_of_a_click_track_and_key_of_a_melody(tmp_path: Path) -> None:
    rate = 16_000
    x = np.zeros(rate * 30, np.float32)
    rng = np.random.default_rng(3)
    for beat in np.arange(0, 30, 0.6):  # 100 BPM
        i = int(beat * rate)
        x[i : i + 200] += (0.3 * rng.standard_normal(200)).astype(np.float32)
    clicks = generate_metadata(write(tmp_path / "clicks.wav", x, rate=rate))["content"]
    assert clicks["tempo_bpm"]["bpm"] == pytest.approx(100, rel=0.02)

    d_major = [62, 64, 66, 67, 69, 71, 73, 74, 73, 71, 69, 67, 66, 64, 62, 69, 66, 62] * 3
    notes = [
        tone(440 * 2 ** ((n - 69) / 12), -12, 0.4, rate)
        * np.hanning(int(0.4 * rate)).astype(np.float32)
        for n in d_major
    ]
    melody = generate_metadata(write(tmp_path / "melody.wav", np.concatenate(notes), rate=rate))
    assert melody["content"]["key"]["label"] == "D major"


def test_speech_ratio_comes_from_the_voice_activity_passed_in(tmp_path: Path) -> None:
    path = write(tmp_path / "v.wav", tone(200, -20, 10))
    meta = generate_metadata(path, voice_activity={"segments": [{"start": 0.0, "end": 5.0}]})
    assert meta["content"]["ratios"]["speech"] == pytest.approx(0.5, abs=0.02)
    assert generate_metadata(path)["content"]["ratios"]["speech"] is None


def test_a_tenth_of_a_second_gives_sensible_output(tmp_path: Path) -> None:
    meta = generate_metadata(write(tmp_path / "short.wav", tone(440, -12, 0.1)))
    tech = meta["technical"]
    assert tech["duration"] == pytest.approx(0.1)
    assert tech["sample_peak_dbfs"] == pytest.approx(-12, abs=0.1)
    # Too short for a 400 ms gating block: no integrated loudness rather than a made-up one.
    assert tech["loudness"]["integrated_lufs"] is None
    assert meta["content"]["tempo_bpm"] is None
    assert validate_oai_dc(meta["dublin_core"]["oai_dc"]) == []


def test_digital_silence_gives_sensible_output(tmp_path: Path) -> None:
    meta = generate_metadata(write(tmp_path / "silence.wav", np.zeros(RATE * 3, np.float32)))
    tech, content = meta["technical"], meta["content"]
    assert tech["loudness"]["integrated_lufs"] is None
    assert tech["sample_peak_dbfs"] is None
    assert tech["noise_floor_dbfs"] is None
    assert tech["silent_channels"] == [0]
    assert content["key"] is None
    assert content["ratios"]["silence"] == 1.0
    assert validate_oai_dc(meta["dublin_core"]["oai_dc"]) == []


def test_stereo_file_with_a_dead_channel(tmp_path: Path) -> None:
    x = tone(1000, -20, 5)
    tech = technical(write(tmp_path / "dead.wav", np.stack([x, np.zeros_like(x)], axis=1)))
    assert tech["silent_channels"] == [1]
    assert tech["channel_peak_dbfs"][0] == pytest.approx(-20, abs=0.05)
    assert tech["channel_peak_dbfs"][1] is None
    # One channel of a -20 dBFS sine alone: the mono reading, -23 LUFS.
    assert tech["loudness"]["integrated_lufs"] == pytest.approx(-23.0, abs=0.1)


def test_band_limited_noisy_recording_sounds_older_than_a_clean_full_band_one(
    tmp_path: Path,
) -> None:
    from scipy import signal

    rate = 44_100
    rng = np.random.default_rng(7)
    gate = np.repeat(rng.random(100) > 0.3, rate // 10)  # phrases and pauses
    music = rng.standard_normal(rate * 10) * 0.1 * gate
    # A 78 rpm transfer: surface noise under everything, the playback chain band-limiting both.
    surface = 0.02 * rng.standard_normal(len(music))
    old = signal.sosfilt(signal.butter(8, 4000, fs=rate, output="sos"), music + surface)
    wide = music
    old_era = generate_metadata(write(tmp_path / "old.wav", old.astype(np.float32), rate=rate))
    new_era = generate_metadata(write(tmp_path / "new.wav", wide.astype(np.float32), rate=rate))
    assert old_era["cultural_tags"]["recording_era"]["era"] in (
        "acoustic_78rpm",
        "electrical_78rpm",
    )
    assert new_era["cultural_tags"]["recording_era"]["era"] == "digital"


def test_analyze_file_includes_the_metadata_section() -> None:
    from stream.analyze import analyze_file

    result = analyze_file(DATA / "vad_clean.flac")
    meta = result["results"]["metadata_generation"]
    assert set(meta) == {"technical", "content", "cultural_tags", "dublin_core"}
    assert meta["technical"]["duration"] == result["audio_info"]["duration"]
    assert meta["content"]["ratios"]["speech"] == pytest.approx(
        result["results"]["voice_activity"]["speech_ratio"], abs=0.05
    )
    assert f"urn:uuid:{result['task_id']}" in meta["dublin_core"]["elements"]["identifier"]


def test_library_entry_point_finds_speech_itself() -> None:
    from detectors.metadata import MetadataGenerator

    for name in ("vad_clean.flac", "vad_music.flac"):
        meta = MetadataGenerator().generate_comprehensive_metadata(DATA / name)
        known = truth(name)
        speech = sum(end - start for start, end in known["speech"]) / known["duration"]
        assert meta["content"]["ratios"]["speech"] == pytest.approx(speech, abs=0.05), name
        assert validate_oai_dc(meta["dublin_core"]["oai_dc"]) == []


@pytest.mark.parametrize("name", ["corrupt.wav", "truncated.flac", "not_audio.wav", "empty.wav"])
def test_undecodable_file_is_a_value_error_with_a_reason(name: str) -> None:
    with pytest.raises(ValueError, match="cannot decode as audio"):
        generate_metadata(DATA / name)


def test_a_wav_without_samples_has_every_field(tmp_path: Path) -> None:
    meta = generate_metadata(write(tmp_path / "none.wav", np.zeros((0, 2), np.float32)))
    with_audio = generate_metadata(write(tmp_path / "some.wav", tone(440, -12, 1)))
    assert set(with_audio["technical"]) <= set(meta["technical"])
    assert meta["technical"]["duration"] == 0.0
    assert meta["technical"]["loudness"] is None
    assert validate_oai_dc(meta["dublin_core"]["oai_dc"]) == []


def test_float_file_with_nan_and_eight_channels_is_measured(tmp_path: Path) -> None:
    x = 0.1 * np.random.default_rng(0).standard_normal((RATE, 8)).astype(np.float32)
    x[100:200, 3] = np.nan
    tech = technical(write(tmp_path / "nan.wav", x, subtype="FLOAT"))
    assert tech["channels"] == 8
    assert tech["loudness"]["integrated_lufs"] is not None
    assert all(p is not None for p in tech["channel_peak_dbfs"])


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_mains_hum_is_found_at_its_frequency(tmp_path: Path, mains: float) -> None:
    speech, rate = sf.read(str(DATA / "vad_clean.flac"), dtype="float32")
    t = np.arange(len(speech)) / rate
    hum = 0.005 * np.sin(2 * np.pi * mains * t) + 0.002 * np.sin(2 * np.pi * 3 * mains * t)
    path = write(tmp_path / "hum.wav", (speech + hum).astype(np.float32), rate=rate)
    found = technical(path)["hum"]
    assert found["detected"]
    assert found["mains_hz"] == mains


def test_no_hum_is_reported_for_clean_speech_or_music() -> None:
    for name in ("vad_clean.flac", "vad_music.flac"):
        hum = technical(DATA / name)["hum"]
        assert hum is None or not hum["detected"], name
    # The noisy fixture was made with 50 Hz hum and harmonics (tests/data/README.md).
    assert technical(DATA / "vad_noise.flac")["hum"]["mains_hz"] == 50.0


def test_measures_do_not_depend_on_block_sizes() -> None:
    from detectors.metadata.generator import SignalAnalyzer, assemble

    path = DATA / "vad_music.flac"
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)

    def measured(block: int) -> dict[str, Any]:
        signal = SignalAnalyzer(rate, data.shape[1])
        for i in range(0, len(data), block):
            signal.feed(data[i : i + block])
        signal.finish()
        meta = assemble(path, sf.info(str(path)), signal, sha256="0" * 64)
        tech, content = meta["technical"], meta["content"]
        return {
            "loudness": tech["loudness"], "noise": tech["noise_floor_dbfs"],
            "bandwidth": tech["effective_bandwidth_hz"], "hum": tech["hum"],
            "tempo": content["tempo_bpm"], "key": content["key"], "ratios": content["ratios"],
            "balance": content["harmonic_percussive_ratio_db"],
        }  # fmt: skip

    reference = measured(65536)
    for block in (333, 4096):
        assert measured(block) == reference, block  # values are rounded as reported


def test_tape_like_band_and_hiss_sound_like_tape(tmp_path: Path) -> None:
    from scipy import signal

    rate = 44_100
    rng = np.random.default_rng(11)
    gate = np.repeat(rng.random(100) > 0.3, rate // 10)
    music = rng.standard_normal(rate * 10) * 0.1 * gate
    hiss = 10 ** (-60 / 20) * rng.standard_normal(len(music))  # in the pauses too
    # Nothing above about 14 kHz (a steep edge, so the band is unambiguous), hiss at -60 dBFS.
    tape = signal.sosfilt(signal.ellip(10, 0.5, 80, 13_000, fs=rate, output="sos"), music + hiss)
    era = generate_metadata(write(tmp_path / "tape.wav", tape.astype(np.float32), rate=rate))
    estimate = era["cultural_tags"]["recording_era"]
    assert estimate["era"] == "analogue_tape"
    assert 12_000 < estimate["basis"]["effective_bandwidth_hz"] < 15_000


def test_a_malformed_bext_chunk_is_reported_not_raised(tmp_path: Path) -> None:
    path = write_bwf(tmp_path / "short_bext.wav", b"too short for a bext chunk", None)
    meta = generate_metadata(path)
    assert meta["technical"]["bext"] is None
    assert "unreadable RIFF chunks" in meta["technical"]["chunk_error"]
    assert meta["technical"]["duration"] == pytest.approx(2.0)


def test_passing_the_16k_signal_gives_the_same_content_as_resampling_it_here(
    tmp_path: Path,
) -> None:
    import soxr

    speech, rate = sf.read(str(DATA / "vad_music.flac"), dtype="float32")
    path = write(tmp_path / "44k.wav", soxr.resample(speech, rate, 44_100), rate=44_100)
    own = generate_metadata(path)["content"]
    given = generate_metadata(path, samples_16k=speech)["content"]
    assert given["key"]["label"] == own["key"]["label"]
    assert given["tempo_bpm"]["bpm"] == pytest.approx(own["tempo_bpm"]["bpm"], rel=0.02)
    for share in ("silence", "music", "other"):
        assert given["ratios"][share] == pytest.approx(own["ratios"][share], abs=0.03), share
