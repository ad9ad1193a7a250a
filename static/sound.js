/* Alert tones for the dashboard, synthesised with the Web Audio API (no audio files).
 *
 * Browsers refuse to start an AudioContext before the user interacts with the page,
 * so the context is created on the first pointer or key gesture and resumed there.
 * The mute choice is remembered in localStorage so it survives reloads.
 */
(function () {
  'use strict';

  var STORAGE_KEY = 'anomalyWatch.muted';
  // A burst of anomalies in one tick should sound like one alert, not a siren.
  var MIN_GAP_MS = 900;

  // Severity is audible without looking: higher pitch, harsher wave, more beeps.
  var TONES = {
    low: { wave: 'sine', freqs: [523], beep: 0.14, gap: 0.0, volume: 0.10 },
    medium: { wave: 'sine', freqs: [659, 659], beep: 0.11, gap: 0.07, volume: 0.12 },
    high: { wave: 'triangle', freqs: [880, 880, 880], beep: 0.10, gap: 0.06, volume: 0.16 },
    critical: { wave: 'square', freqs: [988, 740, 988, 740], beep: 0.13, gap: 0.04, volume: 0.07 }
  };

  var context = null;
  var muted = readMuted();
  var lastPlayedAt = 0;
  var stats = { played: 0, skipped: 0, lastSeverity: null };
  var listeners = [];

  function readMuted() {
    try {
      return window.localStorage.getItem(STORAGE_KEY) === '1';
    } catch (err) {
      return false; // storage can be disabled (private mode); default to sound on
    }
  }

  function writeMuted(value) {
    try {
      window.localStorage.setItem(STORAGE_KEY, value ? '1' : '0');
    } catch (err) {
      /* the switch still works for this page view */
    }
  }

  function unlock() {
    var AudioCtor = window.AudioContext || window.webkitAudioContext;
    if (!AudioCtor) return;
    if (!context) {
      try {
        context = new AudioCtor();
      } catch (err) {
        return;
      }
    }
    if (context.state === 'suspended') {
      context.resume().catch(function () { /* retried on the next gesture */ });
    }
  }

  function onGesture() {
    unlock();
    if (context && context.state === 'running') {
      window.removeEventListener('pointerdown', onGesture, true);
      window.removeEventListener('keydown', onGesture, true);
    }
  }
  window.addEventListener('pointerdown', onGesture, true);
  window.addEventListener('keydown', onGesture, true);

  function scheduleBeep(wave, freq, start, duration, volume) {
    var osc = context.createOscillator();
    var gain = context.createGain();
    osc.type = wave;
    osc.frequency.setValueAtTime(freq, start);
    // A short attack and release avoid the click of a hard-edged square pulse.
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(volume, start + 0.012);
    gain.gain.setValueAtTime(volume, start + duration * 0.6);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + duration);
    osc.connect(gain);
    gain.connect(context.destination);
    osc.start(start);
    osc.stop(start + duration + 0.02);
  }

  /** Play the tone for a severity; returns true when a tone was scheduled. */
  function play(severity) {
    var tone = TONES[severity] || TONES.low;
    var now = Date.now();
    if (muted || !context || context.state !== 'running' || now - lastPlayedAt < MIN_GAP_MS) {
      stats.skipped += 1;
      return false;
    }
    lastPlayedAt = now;
    var at = context.currentTime + 0.01;
    tone.freqs.forEach(function (freq) {
      scheduleBeep(tone.wave, freq, at, tone.beep, tone.volume);
      at += tone.beep + tone.gap;
    });
    stats.played += 1;
    stats.lastSeverity = severity;
    return true;
  }

  function setMuted(value) {
    muted = Boolean(value);
    writeMuted(muted);
    listeners.forEach(function (fn) { fn(muted); });
  }

  window.AlertSound = {
    play: play,
    setMuted: setMuted,
    isMuted: function () { return muted; },
    onChange: function (fn) { listeners.push(fn); },
    state: function () { return context ? context.state : 'not-started'; },
    stats: stats
  };
})();
