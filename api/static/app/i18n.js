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
    renameSpeaker: "Name this speaker", enrolVoice: "recognise this voice in later analyses", mergeSpeaker: "Merge into", apply: "Apply",
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
    navAdmin: "Users and keys", adminOnly: "Only an admin manages users and keys.",
    users: "People who sign in", apiKeys: "API keys for machines", role: "Role", actions: "Actions",
    addUser: "Add user", remove: "Remove", removed: "Removed", added: "Added",
    confirmRemove: "Remove {name}? They can no longer sign in.",
    keyName: "Key name", createKey: "Create key", revoke: "Revoke", revoked: "revoked",
    prefix: "Prefix", lastUsed: "Last used",
    keyOnce: "Key {name}: {secret} — shown this once; store it now.",
    dcLanguage: "Language", language: "Language", dcRelation: "Relation", dcCoverage: "Coverage", dcRights: "Rights",
  },
  it: {
    appTitle: "heritage-audio — archivio",
    navJobs: "Lavori", navUpload: "Carica", navSearch: "Cerca", navLive: "Cruscotto dal vivo",
    navAdmin: "Utenti e chiavi",
    signIn: "Accedi", signOut: "Esci", username: "Nome utente", password: "Password",
    signedInAs: "{name} ({role})", signInFailed: "Accesso non riuscito: {reason}",
    loading: "Caricamento…", error: "Errore: {reason}",
    roleViewer: "Puoi consultare i risultati. Caricamenti e correzioni richiedono un operatore.",
    uploadTitle: "Carica registrazioni",
    dropHere: "Trascina qui i file audio, o premi Invio per sceglierli",
    chooseFiles: "Scegli i file",
    dcLegend: "Dublin Core (vale per tutti i file di questo invio)",
    optionsLegend: "Analisi", processingType: "Tipo di analisi", priority: "Priorità",
    startUpload: "Carica", uploadQueued: "In coda come lavoro {id}", uploading: "Caricamento… {pct} %",
    uploadRefused: "Rifiutato: {reason}", notAudioHint: "non è un file audio",
    jobsTitle: "Lavori", filterStatus: "Stato", all: "Tutti", searchTitle: "Cerca per titolo o nome del file",
    colTitle: "Titolo / file", colStatus: "Stato", colProgress: "Avanzamento", colPriority: "Priorità",
    colSubmitted: "Inviato da", colDuration: "Tempo di elaborazione", colCreated: "Inviato",
    prev: "Precedenti", next: "Successivi", pageOf: "{from}–{to} di {total}", live: "In diretta",
    offline: "Non in diretta",
    statusQueued: "in coda", statusRunning: "in corso", statusCompleted: "completato", statusFailed: "fallito",
    recordingTitle: "Registrazione", play: "Ascolta", lanes: "Corsie della linea del tempo",
    laneSpeech: "Parlato", laneHeritage: "Categoria", laneMusic: "Musica", laneSilence: "Silenzio",
    laneMusicHelp: "Finestre della linea del tempo in una categoria musicale",
    laneSilenceHelp: "Tratti di almeno un secondo con picco sotto −42 dBFS",
    waveform: "Forma d'onda (clic per ascoltare da lì)", spectrogram: "Spettrogramma",
    confidence: "confidenza {pct} %",
    technical: "Metadati tecnici", loudness: "Loudness integrata", truePeak: "True peak",
    bandwidth: "Banda effettiva", era: "Epoca stimata", sampleRate: "Frequenza di campionamento",
    channels: "Canali", durationLabel: "Durata", formatLabel: "Formato", noiseFloor: "Rumore di fondo",
    dublinCore: "Dublin Core", save: "Salva", saved: "Salvato", curatorOwns: "modificabile dai curatori",
    downloads: "Scaricamenti", downloadJson: "Risultato (JSON)", downloadRttm: "Parlanti (RTTM)",
    downloadDc: "Dublin Core (XML oai_dc)", models: "Versioni dei modelli", software: "Software",
    corrections: "Correzioni", correctedBy: "{what} — {who}, {when}",
    selected: "Segmento scelto", relabelSegment: "Riclassifica questo segmento",
    relabelFile: "Riclassifica l'intero file", markWrong: "Segna questo segmento come errato",
    renameSpeaker: "Dai un nome a questo parlante", enrolVoice: "riconosci questa voce nelle analisi future",
    mergeSpeaker: "Unisci a", apply: "Applica", corrected: "corretto", correctionSaved: "Correzione salvata",
    searchPage: "Cerca registrazioni", words: "Parole (titolo, autore, descrizione, …)",
    category: "Categoria", speakerName: "Nome del parlante", dateFrom: "Registrato dal",
    dateTo: "Registrato fino al", minMinutes: "Più breve (minuti)", maxMinutes: "Più lunga (minuti)",
    find: "Cerca", results: "{total} registrazioni", noResults: "Nessuna registrazione corrisponde.",
    fullText: "indice full-text", simpleMatch: "ricerca per parola",
    catfolk_music: "Musica popolare", catclassical_music: "Musica classica", catopera: "Opera lirica",
    catspoken_word: "Parola detta", cathistorical_speech: "Discorso storico",
    catreligious_chant: "Canto religioso", catother: "Altro",
    dcTitle: "Titolo", dcCreator: "Autore", dcSubject: "Soggetto", dcDescription: "Descrizione",
    dcPublisher: "Editore", dcContributor: "Collaboratore", dcDate: "Data (AAAA, AAAA-MM o AAAA-MM-GG)",
    dcType: "Tipo", dcFormat: "Formato", dcIdentifier: "Identificatore", dcSource: "Fonte",
    dcLanguage: "Lingua", dcRelation: "Relazione", dcCoverage: "Copertura", dcRights: "Diritti",
    adminOnly: "Solo un amministratore gestisce utenti e chiavi.",
    users: "Persone che accedono", apiKeys: "Chiavi API per le macchine", role: "Ruolo", actions: "Azioni",
    addUser: "Aggiungi utente", remove: "Rimuovi", removed: "Rimosso", added: "Aggiunto",
    confirmRemove: "Rimuovere {name}? Non potrà più accedere.",
    keyName: "Nome della chiave", createKey: "Crea chiave", revoke: "Revoca", revoked: "revocata",
    prefix: "Prefisso", lastUsed: "Ultimo uso",
    keyOnce: "Chiave {name}: {secret} — mostrata solo ora; conservala subito.",
    language: "Lingua",
  },
};

let language = (localStorage.getItem("language") || navigator.language || "en").slice(0, 2);
if (!(language in STRINGS)) language = "en";
document.documentElement.lang = language;

export const LANGUAGES = { en: "English", it: "Italiano" };
export const currentLanguage = () => language;

/** Remember `code` as this browser's language and reload the page in it. */
export function setLanguage(code) {
  localStorage.setItem("language", code);
  location.reload();
}

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
