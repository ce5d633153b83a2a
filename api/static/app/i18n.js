// Every user-facing string of the archive application, by language. Italian sits beside
// English: a key missing in a language falls back to English.
const STRINGS = {
  en: {
    appTitle: "heritage-audio — archive",
    navJobs: "Jobs", navUpload: "Upload", navSearch: "Search", navLive: "Live dashboard",
    signIn: "Sign in", signOut: "Sign out", username: "Username", password: "Password",
    signedInAs: "{name} ({role})", signInFailed: "Sign-in failed: {reason}",
    loading: "Loading…", error: "Error: {reason}", none: "—",
    roleViewer: "You can read results. Uploads and corrections need an operator.",
    uploadTitle: "Upload recordings",
    dropHere: "Drop audio files here, or press Enter to choose files",
    chooseFiles: "Choose files",
    dcLegend: "Dublin Core (applies to every file of this batch)",
    optionsLegend: "Analysis",
    processingType: "Processing type", priority: "Priority",
    startUpload: "Upload", uploadQueued: "Queued as job {id}", uploading: "Uploading… {pct} %",
    uploadRefused: "Refused: {reason}", notAudioHint: "not an audio file",
    jobsTitle: "Jobs", filterStatus: "Status", all: "All", searchTitle: "Search by title or file name",
    colTitle: "Title / file", colStatus: "Status", colProgress: "Progress", colPriority: "Priority",
    colSubmitted: "Submitted by", colDuration: "Processing time", colCreated: "Submitted",
    prev: "Previous", next: "Next", pageOf: "{from}–{to} of {total}", live: "Live", offline: "Not live",
    statusQueued: "queued", statusRunning: "running", statusCompleted: "completed", statusFailed: "failed",
    recordingTitle: "Recording", play: "Play", lanes: "Timeline lanes",
    laneSpeech: "Speech", laneSpeaker: "{name}", laneHeritage: "Heritage category",
    laneMusic: "Music", laneSilence: "Silence",
    laneMusicHelp: "Windows of the category timeline in a music category",
    laneSilenceHelp: "Stretches of a second or more whose overview peak is below −42 dBFS",
    waveform: "Waveform (click to play from there)", spectrogram: "Spectrogram",
    segment: "{lane}: {start}–{end}", confidence: "confidence {pct} %",
    technical: "Technical metadata", loudness: "Integrated loudness", truePeak: "True peak",
    bandwidth: "Effective bandwidth", era: "Era estimate", sampleRate: "Sample rate", channels: "Channels",
    durationLabel: "Duration", formatLabel: "Format", noiseFloor: "Noise floor",
    dublinCore: "Dublin Core", save: "Save", saved: "Saved", curatorOwns: "editable by curators",
    downloads: "Downloads", downloadJson: "Result (JSON)", downloadRttm: "Speakers (RTTM)",
    downloadDc: "Dublin Core (oai_dc XML)",
    models: "Model versions", software: "Software",
    corrections: "Corrections", correctedBy: "{what} — {who}, {when}",
    selected: "Selected segment", relabelSegment: "Relabel this segment",
    relabelFile: "Relabel the whole file", markWrong: "Mark this segment wrong",
    renameSpeaker: "Name this speaker", mergeSpeaker: "Merge into", apply: "Apply",
    corrected: "corrected", correctionSaved: "Correction stored",
    searchPage: "Search recordings", words: "Words (title, creator, description, …)",
    category: "Category", speakerName: "Speaker name", dateFrom: "Recorded from", dateTo: "Recorded until",
    minMinutes: "Shortest (minutes)", maxMinutes: "Longest (minutes)", find: "Find",
    results: "{total} recordings", noResults: "No recording matches.",
    fullText: "full-text index", simpleMatch: "word match",
    catfolk_music: "Folk music", catclassical_music: "Classical music", catopera: "Opera",
    catspoken_word: "Spoken word", cathistorical_speech: "Historical speech",
    catreligious_chant: "Religious chant", catother: "Other",
    dcTitle: "Title", dcCreator: "Creator", dcSubject: "Subject", dcDescription: "Description",
    dcPublisher: "Publisher", dcContributor: "Contributor", dcDate: "Date (YYYY, YYYY-MM or YYYY-MM-DD)",
    dcType: "Type", dcFormat: "Format", dcIdentifier: "Identifier", dcSource: "Source",
    dcLanguage: "Language", dcRelation: "Relation", dcCoverage: "Coverage", dcRights: "Rights",
  },
  it: {
    navJobs: "Lavori", navUpload: "Carica", navSearch: "Cerca", navLive: "Cruscotto dal vivo",
    signIn: "Accedi", signOut: "Esci", username: "Utente", password: "Password",
    uploadTitle: "Carica registrazioni", jobsTitle: "Lavori", searchPage: "Cerca registrazioni",
    save: "Salva", find: "Cerca", downloads: "Scaricamenti", corrections: "Correzioni",
  },
};

let language = (localStorage.getItem("language") || navigator.language || "en").slice(0, 2);
if (!(language in STRINGS)) language = "en";
document.documentElement.lang = language;

/** The string `key` in the current language, with `{name}` placeholders filled in. */
export function t(key, vars = {}) {
  const text = STRINGS[language][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

export const CATEGORIES = [
  "folk_music", "classical_music", "opera", "spoken_word", "historical_speech",
  "religious_chant", "other",
];
export const MUSIC_CATEGORIES = new Set(["folk_music", "classical_music", "opera", "religious_chant"]);
