"""The demo's own words: people, companies, places, products and notes (no Faker at runtime).

Italian first, English where an Italian software house would meet it (foreign clients,
colleagues, product names). Every generated domain ends in `.example` (RFC 2606), so no
real company's address or website appears in the demo.
"""

from __future__ import annotations

FIRST_NAMES_IT = [
    "Alessandro", "Andrea", "Anna", "Antonio", "Beatrice", "Carlo", "Chiara", "Claudia",
    "Daniele", "Elena", "Elisa", "Federica", "Federico", "Francesca", "Francesco", "Gianluca",
    "Giorgio", "Giovanni", "Giulia", "Ilaria", "Laura", "Lorenzo", "Luca", "Marco", "Maria",
    "Martina", "Matteo", "Michela", "Nicola", "Paola", "Paolo", "Roberta", "Roberto", "Sara",
    "Silvia", "Simone", "Stefano", "Valentina", "Valerio", "Vittoria",
]  # fmt: skip
FIRST_NAMES_EN = [
    "Amelia", "Charlotte", "Daniel", "Emily", "George", "Grace", "Harry", "Jack", "James",
    "Lucy", "Oliver", "Olivia", "Rachel", "Samuel", "Sophie", "Thomas",
]  # fmt: skip
LAST_NAMES_IT = [
    "Barbieri", "Benedetti", "Bruno", "Caruso", "Colombo", "Conti", "Costa", "De Luca",
    "Esposito", "Fabbri", "Ferrara", "Ferrari", "Fontana", "Galli", "Gallo", "Giordano",
    "Greco", "Lombardi", "Mancini", "Marchetti", "Mariani", "Marino", "Martini", "Moretti",
    "Pellegrini", "Ricci", "Rinaldi", "Rizzo", "Romano", "Rossi", "Russo", "Santoro",
    "Testa", "Valentini", "Villa", "Vitale",
]  # fmt: skip
LAST_NAMES_EN = [
    "Baker", "Bennett", "Clarke", "Evans", "Foster", "Hughes", "Mitchell", "Morgan",
    "Parker", "Price", "Reed", "Turner", "Walker", "Wright",
]  # fmt: skip

CONTACT_ROLES = [
    "Amministratore delegato", "Direttore commerciale", "Responsabile IT", "CFO",
    "Responsabile acquisti", "Office manager", "Titolare", "Marketing manager",
    "Head of Operations", "Responsabile amministrativo",
]  # fmt: skip

# Company names: a root (a family name or a brand) and an activity, then a legal form.
COMPANY_ROOTS_IT = [
    "Adriatica", "Alpina", "Arcobaleno", "Aurora", "Borgo", "Castello", "Centrale",
    "Dolomiti", "Etrusca", "Euganea", "Futura", "Garda", "Italica", "Laguna", "Levante",
    "Lombarda", "Mediterranea", "Orobica", "Padana", "Ponente", "Sabauda", "Tirrenica",
    "Valle", "Vesuvio",
]  # fmt: skip
COMPANY_TRADES_IT = [
    "Meccanica", "Arredamenti", "Logistica", "Ceramiche", "Alimentari", "Trasporti",
    "Tessile", "Costruzioni", "Impianti", "Farmaceutica", "Serramenti", "Vini", "Packaging",
    "Elettronica", "Assicurazioni", "Consulting", "Stampa", "Energia",
]  # fmt: skip
COMPANY_LEGAL_IT = ["S.r.l.", "S.r.l.", "S.p.A.", "S.n.c.", "S.a.s."]
COMPANY_NAMES_EN = [
    "Blue Harbor Foods", "Northwind Logistics", "Greenfield Analytics", "Brightwater Systems",
    "Oakridge Retail", "Silverline Travel", "Redstone Engineering", "Kingsbridge Consulting",
    "Clearview Health", "Highland Textiles",
]  # fmt: skip
COMPANY_LEGAL_EN = ["Ltd", "Ltd", "GmbH", "Inc.", "B.V."]
PUBLIC_BODIES = [
    "Comune di Vimercate", "Comune di Cesena", "Comune di Lecco", "ASL Bergamo Est",
    "Università di Ferrara", "Provincia di Rimini", "Camera di Commercio di Modena",
]  # fmt: skip

CITIES = [
    ("Milano", "02"), ("Bergamo", "035"), ("Brescia", "030"), ("Torino", "011"),
    ("Verona", "045"), ("Padova", "049"), ("Bologna", "051"), ("Modena", "059"),
    ("Firenze", "055"), ("Roma", "06"), ("Napoli", "081"), ("Bari", "080"),
    ("Ancona", "071"), ("Pesaro", "0721"), ("Rimini", "0541"), ("Treviso", "0422"),
]  # fmt: skip
FOREIGN_CITIES = [("London", "United Kingdom"), ("Munich", "Germany"), ("Rotterdam", "Netherlands")]
STREETS = ["Via Roma", "Via Garibaldi", "Via Mazzini", "Corso Italia", "Via dell'Industria",
           "Viale Europa", "Via Verdi", "Via dei Mille"]  # fmt: skip

SECTORS = [
    "Manifattura", "Commercio", "Servizi", "Pubblica amministrazione", "Sanità",
    "Logistica", "Turismo", "Finanza",
]  # fmt: skip
SOURCES = [
    "Sito web", "Passaparola", "Fiera", "Partner", "Campagna email", "LinkedIn",
    "Telefonata a freddo",
]  # fmt: skip

# (name, list price in cents, (low, high) quantity, unit word, title pattern)
PRODUCTS = [
    ("CRM Cloud licence", 480_00, (5, 120), "utenti", "CRM Cloud {q} utenti"),
    ("Implementation days", 800_00, (5, 40), "giornate", "Implementazione {q} giornate"),
    ("Training", 1_500_00, (1, 6), "sessioni", "Formazione commerciali ({q} sessioni)"),
    ("Support contract", 3_600_00, (1, 5), "anni", "Contratto di assistenza {q} anni"),
    ("Hardware bundle", 1_200_00, (3, 40), "postazioni", "Bundle hardware {q} postazioni"),
    ("ERP integration", 12_000_00, (1, 4), "moduli", "Integrazione ERP ({q} moduli)"),
]
LOST_REASONS = ["Price", "Chose a competitor", "No budget", "Timing", "No decision"]

AGENCY_TAG = "Agenzia Media Nord"
TAGS = [
    (AGENCY_TAG, "#7c3aed"),
    ("Strategico", "#dc2626"),
    ("Fiera SMAU", "#0891b2"),
    ("Pubblica amministrazione", "#16a34a"),
]

COMMENTS = [
    "Il cliente chiede referenze nel suo settore: mandare il caso Etrusca Ceramiche.",
    "Budget approvato dal CdA, manca solo la firma del CFO.",
    "Occhio: stanno valutando anche un concorrente americano.",
    "They want the go-live before the trade fair in March.",
    "Richiesta una demo con i loro dati reali, preparare l'ambiente di prova.",
    "Decision maker is the Head of Operations, not IT.",
    "Chiedono il pagamento in tre rate: ok fino a 20k, oltre serve l'ok di Marco.",
    "Hanno già il gestionale: l'integrazione è il punto chiave.",
    "Follow-up after the webinar: very interested in the mobile app.",
    "Prezzo giudicato alto, proporre la formula annuale.",
]
ACTIVITY_NOTES = {
    "call": ["Prima telefonata conoscitiva", "Sentito il referente", "Follow-up call",
             "Chiarite le tempistiche", "Call about pricing"],
    "visit": ["Visita in sede", "Incontro con la direzione", "Site visit with the IT team",
              "Sopralluogo in magazzino"],
    "demo": ["Demo della piattaforma", "Live demo of the pipeline board",
             "Demo con i loro dati"],
    "info_request": ["Richiesta dal sito", "Asked for a price list", "Richiesta brochure"],
    "proposal_sent": ["Offerta inviata", "Proposal sent by email"],
    "email": ["Inviato materiale", "Mandato il caso di studio", "Sent the contract draft"],
}  # fmt: skip
NEXT_ACTION_NOTES = [
    "Richiamare per feedback", "Fissare la demo", "Mandare l'offerta aggiornata",
    "Call back about the budget", "Sentire il CFO", "Confermare la data della visita",
]  # fmt: skip
STANDBY_NOTES = ["Attendono il budget del prossimo anno", "Waiting for the board meeting",
                 "Progetto rimandato a dopo l'estate"]  # fmt: skip
LOST_NOTES = {
    "Price": "Offerta concorrente più bassa del 20%",
    "Chose a competitor": "Went with a cheaper vendor",
    "No budget": "Budget tagliato",
    "Timing": "Rimandato al prossimo anno",
    "No decision": "",
}
CANCEL_NOTES = ["Progetto annullato dal cliente", "Azienda acquisita, progetto fermo"]
DESCRIPTIONS = [
    "Vogliono sostituire i fogli Excel dei commerciali.",
    "Rete vendita in crescita, servono forecast affidabili.",
    "Looking for one tool for the sales team in Italy and abroad.",
    "Progetto legato al nuovo gestionale.\nReferente tecnico da coinvolgere presto.",
    "",
]
